export interface BoundedCacheOptions<K, V> {
  /** Most entries held at once; setting a new key when full evicts the oldest. A positive integer. */
  readonly maxEntries: number;
  /** How long an entry lives after it was set, in ms; default: until evicted by count. */
  readonly ttlMs?: number;
  /** The clock, in ms; default `Date.now`. */
  readonly now?: () => number;
  /** Told of each entry the cache drops by itself (when full, or expired), not of `delete`. */
  readonly onEvict?: (key: K, value: V) => void;
}

interface Entry<V> {
  readonly value: V;
  readonly expiresAtMs: number;
}

/**
 * A map that stays bounded: at most `maxEntries` entries, each for at most `ttlMs`. Entries
 * are kept in the order they were set (setting a key again moves it last), so the oldest is
 * both the first evicted when full and the first to expire. Expired entries go when they are
 * met (`get`, `has`, `set`, `evictExpired`), never on a timer of the cache's own.
 */
export class BoundedCache<K, V> {
  private readonly map = new Map<K, Entry<V>>();
  private readonly maxEntries: number;
  private readonly ttlMs: number;
  private readonly now: () => number;
  private readonly onEvict: ((key: K, value: V) => void) | undefined;

  constructor(options: BoundedCacheOptions<K, V>) {
    if (!Number.isInteger(options.maxEntries) || options.maxEntries < 1) {
      throw new RangeError(`maxEntries must be a positive integer, got ${options.maxEntries}`);
    }
    if (options.ttlMs !== undefined && !(options.ttlMs >= 0)) throw new RangeError(`ttlMs must be 0 or more, got ${options.ttlMs}`);
    this.maxEntries = options.maxEntries;
    this.ttlMs = options.ttlMs ?? Number.POSITIVE_INFINITY;
    this.now = options.now ?? Date.now;
    this.onEvict = options.onEvict;
  }

  /** The live value of `key`, or undefined (an expired entry is evicted). */
  get(key: K): V | undefined {
    return this.live(key)?.value;
  }

  /** Whether `key` has a live entry (an expired one is evicted). */
  has(key: K): boolean {
    return this.live(key) !== undefined;
  }

  /** Sets `key` last, living `ttlMs` from now; drops expired entries and, when full, the oldest. */
  set(key: K, value: V): void {
    const nowMs = this.now();
    this.map.delete(key);
    this.evictExpired(nowMs);
    for (const [oldest, entry] of this.map) {
      if (this.map.size < this.maxEntries) break;
      this.evict(oldest, entry);
    }
    this.map.set(key, { value, expiresAtMs: nowMs + this.ttlMs });
  }

  /** Removes `key` without telling `onEvict`; true if it was there. */
  delete(key: K): boolean {
    return this.map.delete(key);
  }

  /** Evicts every entry expired at `nowMs` (default: the clock's now). */
  evictExpired(nowMs: number = this.now()): void {
    for (const [key, entry] of this.map) {
      if (entry.expiresAtMs > nowMs) break; // in the order set: the rest expire later
      this.evict(key, entry);
    }
  }

  /** The live entries, oldest first; deleting the current one while iterating is safe. */
  *entries(): IterableIterator<[K, V]> {
    const nowMs = this.now();
    for (const [key, entry] of this.map) if (entry.expiresAtMs > nowMs) yield [key, entry.value];
  }

  /** Entries held, counting expired ones not yet met. */
  get size(): number {
    return this.map.size;
  }

  private live(key: K): Entry<V> | undefined {
    const entry = this.map.get(key);
    if (entry === undefined || entry.expiresAtMs > this.now()) return entry;
    this.evict(key, entry);
    return undefined;
  }

  private evict(key: K, entry: Entry<V>): void {
    this.map.delete(key);
    this.onEvict?.(key, entry.value);
  }
}
