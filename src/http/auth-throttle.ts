import { BoundedCache } from '../lib/bounded-cache.js';

/**
 * Slows repeated 401s from one address: after `freeFailures` failures within `windowMs`,
 * each further answer waits `stepMs` more, up to `maxDelayMs`. Bounded memory: at most
 * `maxAddresses` addresses are tracked (the oldest are forgotten first).
 */
export class AuthThrottle {
  /** The window is not a TTL of the cache: `fail` is told the time. */
  private readonly failures: BoundedCache<string, { count: number; firstAtMs: number }>;

  constructor(private readonly options = { freeFailures: 5, windowMs: 60_000, stepMs: 250, maxDelayMs: 3_000, maxAddresses: 10_000 }) {
    this.failures = new BoundedCache({ maxEntries: options.maxAddresses });
  }

  /** Records a failure and returns how long to wait before answering it. */
  fail(address: string, nowMs = Date.now()): number {
    const { freeFailures, windowMs, stepMs, maxDelayMs } = this.options;
    let entry = this.failures.get(address);
    if (entry === undefined || nowMs - entry.firstAtMs > windowMs) {
      entry = { count: 0, firstAtMs: nowMs };
      this.failures.set(address, entry);
    }
    entry.count += 1;
    return Math.min(maxDelayMs, Math.max(0, entry.count - freeFailures) * stepMs);
  }
}
