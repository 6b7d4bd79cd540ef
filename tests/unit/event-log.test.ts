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
