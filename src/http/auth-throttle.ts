/**
 * Slows repeated 401s from one address: after `freeFailures` failures within `windowMs`,
 * each further answer waits `stepMs` more, up to `maxDelayMs`. Bounded memory: at most
 * `maxAddresses` addresses are tracked (the oldest are forgotten first).
 */
export class AuthThrottle {
  private readonly failures = new Map<string, { count: number; firstAtMs: number }>();

  constructor(
    private readonly options = { freeFailures: 5, windowMs: 60_000, stepMs: 250, maxDelayMs: 3_000, maxAddresses: 10_000 },
  ) {}

  /** Records a failure and returns how long to wait before answering it. */
  fail(address: string, nowMs = Date.now()): number {
    const { freeFailures, windowMs, stepMs, maxDelayMs, maxAddresses } = this.options;
    let entry = this.failures.get(address);
    if (entry === undefined || nowMs - entry.firstAtMs > windowMs) {
      entry = { count: 0, firstAtMs: nowMs };
      this.failures.delete(address);
      if (this.failures.size >= maxAddresses) this.failures.delete(this.failures.keys().next().value as string);
      this.failures.set(address, entry);
    }
    entry.count += 1;
    return Math.min(maxDelayMs, Math.max(0, entry.count - freeFailures) * stepMs);
  }
}
