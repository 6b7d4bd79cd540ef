import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { MemoryEventStore, type MemoryEventStoreOptions } from '../../src/streaming/memory/memory-event-store.js';
import { eventBytes, type RunEvent } from '../../src/domain/index.js';
import { runEvent } from '../helpers/events.js';
import { waitFor } from '../helpers/wait-for.js';

const event = (ms: number, type: RunEvent['type'] = 'token'): RunEvent =>
  runEvent(ms, { prev: ms > 1 ? { ms: ms - 1, seq: 0 } : null, type });

describe('MemoryEventStore retention', () => {
  let store: MemoryEventStore;
  afterEach(() => store.close());

  /** A started store that fails the test on any error it reports. */
  const open = (options: Omit<MemoryEventStoreOptions, 'onError'>): MemoryEventStore => {
    store = new MemoryEventStore({ ...options, onError: (e) => assert.fail(String(e)) });
    store.start();
    return store;
  };

  it('keeps a run until the TTL after its end, then forgets it', async () => {
    open({ ttlSeconds: 10 });
    store.append('run', event(1));
    store.append('run', event(2, 'end'));
    const endedAt = Date.now();
    store.expire(endedAt + 9_000);
    assert.equal((await store.read('run', null, 10)).length, 2);
    store.expire(endedAt + 11_000);
    assert.equal((await store.read('run', null, 10)).length, 0);
    assert.equal(store.size, 0);
  });

  it('never expires a run that has not ended', async () => {
    open({ ttlSeconds: 1 });
    store.append('run', event(1));
    store.expire(Date.now() + 3_600_000);
    assert.equal((await store.read('run', null, 10)).length, 1);
  });

  it('holds at most maxEndedRuns ended runs, dropping the oldest first', async () => {
    open({ ttlSeconds: 600, maxEndedRuns: 3 });
    for (const run of ['a', 'b', 'c', 'd']) store.append(run, event(1, 'end'));
    assert.equal((await store.read('a', null, 10)).length, 0);
    for (const run of ['b', 'c', 'd']) assert.equal((await store.read(run, null, 10)).length, 1);
    assert.equal(store.size, 3);
  });

  it('holds at most maxEndedBytes of ended runs, dropping those that ended first (never the one that just ended)', async () => {
    const bytes = eventBytes(event(1));
    open({ ttlSeconds: 600, maxEndedBytes: 5 * bytes });
    for (const run of ['a', 'b']) {
      store.append(run, event(1));
      store.append(run, event(2, 'end'));
    }
    assert.equal(store.endedRunsBytes, 4 * bytes);
    store.append('c', event(1));
    store.append('c', event(2));
    assert.equal(store.endedRunsBytes, 4 * bytes, 'a running run is not counted');
    store.append('c', event(3, 'end'));
    assert.equal((await store.read('a', null, 10)).length, 0, 'the first to end is dropped');
    assert.equal((await store.read('b', null, 10)).length, 2);
    assert.equal(store.endedRunsBytes, 5 * bytes);
    store.append('huge', event(1));
    for (let ms = 2; ms <= 9; ms++) store.append('huge', event(ms, ms === 9 ? 'end' : 'token'));
    assert.equal((await store.read('huge', null, 100)).length, 9, 'kept, alone past the bound');
    assert.equal(store.size, 1);
    store.expire(Date.now() + 3_600_000);
    assert.equal(store.endedRunsBytes, 0);
  });

  it('keeps the newest events of a run within maxLen and maxBytes, and reads them by pages of bytes', async () => {
    const bytes = eventBytes(event(1));
    open({ ttlSeconds: 600, maxLen: 5, maxBytes: 3 * bytes });
    for (let ms = 1; ms <= 5; ms++) store.append('run', event(ms));
    assert.deepEqual(
      (await store.read('run', null, 10)).map((e) => e.id.ms),
      [3, 4, 5],
    );
    // Thousands of appends trim and compact as they go: the store holds the newest three.
    for (let ms = 6; ms <= 5_000; ms++) store.append('run', event(ms));
    assert.deepEqual(
      (await store.read('run', null, 10)).map((e) => e.id.ms),
      [4_998, 4_999, 5_000],
    );
    assert.deepEqual(
      (await store.read('run', { ms: 4_998, seq: 0 }, 10, 1)).map((e) => e.id.ms),
      [4_999],
    );
  });

  it('leaves nothing behind when a listener of an unknown run goes', () => {
    open({ ttlSeconds: 600 });
    const stop = store.subscribe('old-run', null, () => undefined);
    assert.equal(store.size, 1);
    stop();
    assert.equal(store.size, 0);
  });

  it('once started (start is idempotent), sweeps expired runs by itself', async () => {
    open({ ttlSeconds: 1 });
    store.start();
    store.append('run', event(1, 'end'));
    await waitFor(() => store.size === 0, { what: 'the sweeper to drop the ended run' });
  });
});
