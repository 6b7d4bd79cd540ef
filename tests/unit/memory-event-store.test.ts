import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { MemoryEventStore } from '../../src/streaming/memory/memory-event-store.js';
import type { RunEvent } from '../../src/domain/index.js';

const event = (ms: number, type: RunEvent['type'] = 'token'): RunEvent => ({ id: { ms, seq: 0 }, prev: ms > 1 ? { ms: ms - 1, seq: 0 } : null, type, json: '{}' });

describe('MemoryEventStore retention', () => {
  let store: MemoryEventStore;
  afterEach(() => store.close());

  it('keeps a run until the TTL after its end, then forgets it', async () => {
    store = new MemoryEventStore({ ttlSeconds: 10, onError: (e) => assert.fail(String(e)) });
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
    store = new MemoryEventStore({ ttlSeconds: 1, onError: (e) => assert.fail(String(e)) });
    store.append('run', event(1));
    store.expire(Date.now() + 3_600_000);
    assert.equal((await store.read('run', null, 10)).length, 1);
  });

  it('holds at most maxEndedRuns ended runs, dropping the oldest first', async () => {
    store = new MemoryEventStore({ ttlSeconds: 600, maxEndedRuns: 3, onError: (e) => assert.fail(String(e)) });
    for (const run of ['a', 'b', 'c', 'd']) store.append(run, event(1, 'end'));
    assert.equal((await store.read('a', null, 10)).length, 0);
    for (const run of ['b', 'c', 'd']) assert.equal((await store.read(run, null, 10)).length, 1);
    assert.equal(store.size, 3);
  });

  it('leaves nothing behind when a listener of an unknown run goes', () => {
    store = new MemoryEventStore({ ttlSeconds: 600, onError: (e) => assert.fail(String(e)) });
    const stop = store.subscribe('old-run', null, () => undefined);
    assert.equal(store.size, 1);
    stop();
    assert.equal(store.size, 0);
  });
});
