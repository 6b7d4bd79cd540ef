import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { EventArchiveRepository } from '../../src/db/event-archive-repository.js';
import type { EventId, RunEvent } from '../../src/domain/index.js';
import type { EventArchiver } from '../../src/streaming/event-archiver.js';
import { EventLog } from '../../src/streaming/event-log.js';
import { MemoryEventStore } from '../../src/streaming/memory/memory-event-store.js';

const event = (ms: number, type: RunEvent['type'] = 'token'): RunEvent => ({
  id: { ms, seq: 0 },
  prev: ms > 1 ? { ms: ms - 1, seq: 0 } : null,
  type,
  json: '{}',
});
const id = (ms: number): EventId => ({ ms, seq: 0 });
const HOUR_MS = 3_600_000;

describe('EventLog.isPastEnd', () => {
  let store: MemoryEventStore;
  afterEach(() => store.close());

  /** A log over an in-process store and an archive whose `end` id is `archived.endId`. */
  function logWith(archived: { endId: EventId | null; lookups: number }): EventLog {
    store = new MemoryEventStore({ ttlSeconds: 600, onError: (e) => assert.fail(String(e)) });
    const archive = {
      async endId() {
        archived.lookups += 1;
        return archived.endId;
      },
    } as unknown as EventArchiveRepository;
    return new EventLog({ store, archiver: {} as EventArchiver, archive, onError: (e) => assert.fail(String(e)) });
  }

  /** Every subscription is gone once the store forgets the run's events. */
  function assertUnsubscribed(): void {
    store.expire(Date.now() + HOUR_MS);
    assert.equal(store.size, 0, 'unsubscribed');
  }

  it('compares with the archived `end` at once', async () => {
    const log = logWith({ endId: id(7), lookups: 0 });
    assert.equal(await log.isPastEnd('run', id(7), HOUR_MS), true);
    assert.equal(await log.isPastEnd('run', id(6), HOUR_MS), false);
    assertUnsubscribed();
  });

  it('answers false at once when the fast stream holds an event after the resume point', async () => {
    const log = logWith({ endId: null, lookups: 0 });
    store.append('run', event(1));
    store.append('run', event(2, 'end'));
    assert.equal(await log.isPastEnd('run', id(1), HOUR_MS), false);
    assertUnsubscribed();
  });

  it('answers with an `end` that arrives live, without waiting out the deadline', async () => {
    const log = logWith({ endId: null, lookups: 0 });
    const waiting = log.isPastEnd('run', id(9), HOUR_MS);
    await nextTurn();
    store.append('run', event(9, 'end'));
    assert.equal(await waiting, true);
    assertUnsubscribed();
  });

  it('looks in the archive again at the deadline', async () => {
    const archived: { endId: EventId | null; lookups: number } = { endId: null, lookups: 0 };
    const log = logWith(archived);
    assert.equal(await log.isPastEnd('run', id(3), 10), false, 'no `end` anywhere');
    assert.equal(archived.lookups, 2);
    const waiting = log.isPastEnd('run', id(3), 10);
    await nextTurn();
    archived.endId = id(3); // archived by another instance meanwhile
    assert.equal(await waiting, true);
    assertUnsubscribed();
  });
});

describe('EventLog.drain', () => {
  /** A log whose archiver's flush answers what `flush` says, over an in-process store. */
  function logWith(flush: () => Promise<void>): { log: EventLog; flushes: () => number; store: MemoryEventStore } {
    let flushes = 0;
    const store = new MemoryEventStore({ ttlSeconds: 600, onError: (e) => assert.fail(String(e)) });
    const archiver = {
      flush: () => {
        flushes += 1;
        return flush();
      },
    } as unknown as EventArchiver;
    const log = new EventLog({ store, archiver, archive: {} as EventArchiveRepository, onError: (e) => assert.fail(String(e)) });
    return { log, flushes: () => flushes, store };
  }

  it('asks the archiver to write now, and answers true once everything is written', async () => {
    const { log, flushes, store } = logWith(() => Promise.resolve());
    assert.equal(await log.drain(HOUR_MS, new AbortController().signal), true);
    assert.equal(flushes(), 1);
    await store.close();
  });

  it('tries again after a pause when a write fails, within the deadline', async () => {
    let failures = 2;
    const { log, flushes, store } = logWith(() => (failures-- > 0 ? Promise.reject(new Error('database away')) : Promise.resolve()));
    assert.equal(await log.drain(HOUR_MS, new AbortController().signal), true);
    assert.equal(flushes(), 3);
    await store.close();
  });

  it('answers false at the deadline when the writes do not finish, and at once when the run is aborted', async () => {
    const { log, store } = logWith(() => new Promise(() => undefined));
    assert.equal(await log.drain(20, new AbortController().signal), false);
    const failing = logWith(() => Promise.reject(new Error('database away')));
    assert.equal(await failing.log.drain(200, new AbortController().signal), false);
    const aborted = new AbortController();
    const waiting = log.drain(HOUR_MS, aborted.signal);
    aborted.abort();
    assert.equal(await waiting, false);
    await Promise.all([store.close(), failing.store.close()]);
  });
});

describe('EventLog.read', () => {
  it('reads the archive through its limiter: at most archiveReadConcurrency pages at once', async () => {
    const store = new MemoryEventStore({ ttlSeconds: 600, onError: (e) => assert.fail(String(e)) });
    const waiting: Array<() => void> = [];
    const archive = {
      read: () => new Promise<RunEvent[]>((resolve) => waiting.push(() => resolve([event(1)]))),
    } as unknown as EventArchiveRepository;
    const log = new EventLog({
      store,
      archiver: {} as EventArchiver,
      archive,
      onError: (e) => assert.fail(String(e)),
      archiveReadConcurrency: 2,
    });
    const reads = Array.from({ length: 5 }, () => log.read('run', null, 10, 1_000));
    await nextTurn();
    assert.deepEqual(log.archiveReadStats, { limit: 2, active: 2, queued: 3 });
    while (waiting.length > 0 || log.archiveReadStats.active > 0) {
      waiting.shift()?.();
      await nextTurn();
    }
    assert.deepEqual(
      (await Promise.all(reads)).map((page) => page.length),
      [1, 1, 1, 1, 1],
    );
    assert.deepEqual(log.archiveReadStats, { limit: 2, active: 0, queued: 0 });
    await store.close();
  });
});
