/** A map whose entries expire `ttlMs` after they were set, read against an injected clock. */
export class TtlCache<V> {
  private readonly entries = new Map<string, { readonly value: V; readonly expiresAtMs: number }>();

  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** The live value, or undefined (an expired entry is dropped). */
  get(key: string): V | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    if (this.now() >= entry.expiresAtMs) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  /** Stores the value; with a TTL of 0 nothing is kept. */
  set(key: string, value: V): void {
    if (this.ttlMs <= 0) return;
    this.entries.set(key, { value, expiresAtMs: this.now() + this.ttlMs });
  }

  get size(): number {
    return this.entries.size;
  }
}
