import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BoundedCache, type BoundedCacheOptions } from '../../src/lib/bounded-cache.js';

/** A cache on a clock the test moves, recording what it evicts. */
function setup(options: Omit<BoundedCacheOptions<string, number>, 'now' | 'onEvict'>) {
  let nowMs = 0;
  const evicted: Array<[string, number]> = [];
  const cache = new BoundedCache<string, number>({ ...options, now: () => nowMs, onEvict: (key, value) => evicted.push([key, value]) });
  return { cache, evicted, advance: (ms: number) => (nowMs += ms) };
}

describe('BoundedCache', () => {
  it('holds at most maxEntries, evicting the oldest set first and telling onEvict', () => {
    const { cache, evicted } = setup({ maxEntries: 2 });
    cache.set('a', 1);
    cache.set('b', 2);
    cache.set('c', 3);
    assert.equal(cache.size, 2);
    assert.equal(cache.get('a'), undefined);
    assert.deepEqual(
      [...cache.entries()],
      [
        ['b', 2],
        ['c', 3],
      ],
    );
    assert.deepEqual(evicted, [['a', 1]]);
  });

  it('moves a key set again to the end, so the next eviction spares it', () => {
    const { cache, evicted } = setup({ maxEntries: 2 });
    cache.set('a', 1);
    cache.set('b', 2);
    cache.set('a', 10);
    cache.set('c', 3);
    assert.deepEqual(
      [...cache.entries()],
      [
        ['a', 10],
        ['c', 3],
      ],
    );
    assert.deepEqual(evicted, [['b', 2]]);
  });

  it('keeps an entry ttlMs after it was set, then no longer', () => {
    const { cache, evicted, advance } = setup({ maxEntries: 10, ttlMs: 1_000 });
    cache.set('a', 1);
    advance(999);
    assert.equal(cache.get('a'), 1);
    assert.ok(cache.has('a'));
    advance(1);
    assert.equal(cache.has('a'), false);
    assert.equal(cache.get('a'), undefined);
    assert.equal(cache.size, 0);
    assert.deepEqual(evicted, [['a', 1]], 'an expired entry is evicted once');
  });

  it('keeps nothing with a TTL of 0', () => {
    const { cache } = setup({ maxEntries: 10, ttlMs: 0 });
    cache.set('a', 1);
    assert.equal(cache.get('a'), undefined);
    assert.deepEqual([...cache.entries()], []);
  });

  it('evictExpired drops the entries expired at a given time, oldest first, and stops at the first live one', () => {
    const { cache, evicted, advance } = setup({ maxEntries: 10, ttlMs: 100 });
    cache.set('a', 1);
    advance(10);
    cache.set('b', 2);
    advance(10);
    cache.set('c', 3);
    cache.evictExpired(110);
    assert.deepEqual(evicted, [
      ['a', 1],
      ['b', 2],
    ]);
    assert.equal(cache.size, 1);
    cache.evictExpired();
    assert.equal(cache.size, 1, 'by its own clock nothing else has expired');
  });

  it('drops expired entries when a key is set, not only when full', () => {
    const { cache, evicted, advance } = setup({ maxEntries: 3, ttlMs: 100 });
    cache.set('a', 1);
    advance(50);
    cache.set('b', 2);
    advance(60);
    cache.set('c', 3);
    assert.deepEqual(evicted, [['a', 1]]);
    assert.equal(cache.size, 2);
    assert.deepEqual(
      [...cache.entries()],
      [
        ['b', 2],
        ['c', 3],
      ],
    );
  });

  it('delete removes a key without telling onEvict', () => {
    const { cache, evicted } = setup({ maxEntries: 2 });
    cache.set('a', 1);
    assert.equal(cache.delete('a'), true);
    assert.equal(cache.delete('a'), false);
    assert.deepEqual(evicted, []);
  });

  it('lets a caller delete entries while iterating them', () => {
    const { cache } = setup({ maxEntries: 10 });
    for (const [key, value] of [
      ['a', 1],
      ['b', 2],
      ['c', 3],
      ['d', 4],
    ] as const)
      cache.set(key, value);
    for (const [key, value] of cache.entries()) if (value % 2 === 0) cache.delete(key);
    assert.deepEqual(
      [...cache.entries()],
      [
        ['a', 1],
        ['c', 3],
      ],
    );
  });

  it('refuses a bound that is not a positive integer and a negative TTL', () => {
    for (const maxEntries of [0, -1, 1.5, Number.NaN]) assert.throws(() => new BoundedCache({ maxEntries }), RangeError);
    for (const ttlMs of [-1, Number.NaN]) assert.throws(() => new BoundedCache({ maxEntries: 1, ttlMs }), RangeError);
  });
});
