import assert from 'node:assert/strict';
import { describe, it, mock } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { compareEventIds, type EventId, formatEventId, type RunEvent, takeChain } from '../../src/domain/index.js';
import { type FollowLog, type FollowOptions, type FollowSink, RunFollower, UnfillableGapError } from '../../src/streaming/run-follower.js';
import { waitFor } from '../helpers/wait-for.js';

/** Event `ms` of a run whose events are 1, 2, 3…; `prev` may be set to fake a gap. */
const event = (ms: number, type: RunEvent['type'] = 'token', json = '{}'): RunEvent => ({
  id: { ms, seq: 0 },
  prev: ms > 1 ? { ms: ms - 1, seq: 0 } : null,
  type,
  json,
});

/** A log whose reads answer what is stored and whose subscribers get what is published. */
class FakeLog implements FollowLog {
  readonly stored: RunEvent[] = [];
  readonly listeners = new Set<(event: RunEvent) => void>();
  reads = 0;

  async read(_runId: string, after: EventId | null, limit: number): Promise<RunEvent[]> {
    this.reads += 1;
    const newer = this.stored.filter((e) => after === null || compareEventIds(e.id, after) > 0);
    return takeChain(newer.slice(0, limit), after);
  }

  subscribe(_runId: string, _after: EventId | null, listener: (event: RunEvent) => void): () => void {
    const entry = (e: RunEvent) => listener(e);
    this.listeners.add(entry);
    return () => this.listeners.delete(entry);
  }

  /** Stored and published, as a run's append does. */
  append(...events: RunEvent[]): void {
    for (const e of events) {
      this.stored.push(e);
      this.publish(e);
    }
  }

  publish(e: RunEvent): void {
    for (const listener of this.listeners) listener(e);
  }
}

/** A sink that records its writes; `room` says whether it takes more now. */
class FakeSink implements FollowSink {
  readonly writes: RunEvent[][] = [];
  room = true;
  drains = 0;

  send(events: readonly RunEvent[]): boolean {
    this.writes.push([...events]);
    return true;
  }

  get hasRoom(): boolean {
    return this.room;
  }

  async drained(): Promise<void> {
    this.drains += 1;
  }

  bytesOf(e: RunEvent): number {
    return e.json.length;
  }

  get ids(): string[] {
    return this.writes.flat().map((e) => formatEventId(e.id));
  }
}

function follow(log: FakeLog, sink: FakeSink, options: Partial<FollowOptions> = {}) {
  const gone = new AbortController();
  const idle = { calls: 0 };
  const done = new RunFollower({
    eventLog: log,
    runId: 'run',
    after: null,
    sink,
    signal: gone.signal,
    idleMs: 60_000,
    maxQueuedBytes: 1_000_000,
    onOverflow: () => assert.fail('no overflow expected'),
    onIdle: () => {
      idle.calls += 1;
      return false;
    },
    ...options,
  }).follow();
  return { done, gone, idle };
}

const ids = (...ms: number[]) => ms.map((n) => `${n}-0`);

describe('RunFollower', () => {
  it('sends the stored events, then live ones, exactly once and in order, and stops at `end`', async () => {
    const log = new FakeLog();
    const sink = new FakeSink();
    log.append(event(1), event(2));
    const { done } = follow(log, sink);
    await waitFor(() => sink.ids.length === 2);
    log.append(event(3), event(4, 'end'));
    await done;
    assert.deepEqual(sink.ids, ids(1, 2, 3, 4));
    assert.equal(log.listeners.size, 0, 'unsubscribed');
  });

  it('hands a caught-up reader each live event inside the store callback (no queue, no timer)', async () => {
    const log = new FakeLog();
    const sink = new FakeSink();
    const { done } = follow(log, sink);
    await waitFor(() => log.reads === 1);
    await nextTurn(); // parked
    log.append(event(1));
    assert.deepEqual(sink.ids, ids(1), 'sent before append returned');
    log.append(event(2, 'end'));
    assert.deepEqual(sink.ids, ids(1, 2));
    await done;
  });

  it('skips a duplicate and fills a gap by reading before going on', async () => {
    const log = new FakeLog();
    const sink = new FakeSink();
    log.append(event(1));
    const { done } = follow(log, sink);
    await waitFor(() => sink.ids.length === 1);
    await nextTurn();
    log.stored.push(event(2)); // stored, its notification lost
    log.publish(event(1)); // a duplicate
    log.append(event(3));
    log.append(event(4, 'end'));
    await done;
    assert.deepEqual(sink.ids, ids(1, 2, 3, 4));
  });

  it('sends nothing after a resume point beyond the end, and keeps following until aborted', async () => {
    // The events route answers 204 before following a final run resumed past its `end`; a
    // follower given such a point drops the `end` as already sent and waits, pinging.
    const log = new FakeLog();
    const sink = new FakeSink();
    log.append(event(1), event(2, 'end'));
    const { done, gone, idle } = follow(log, sink, { after: { ms: 99, seq: 0 }, idleMs: 5 });
    await waitFor(() => idle.calls >= 2);
    log.publish(event(2, 'end'));
    await nextTurn();
    assert.deepEqual(sink.writes, []);
    gone.abort();
    await done;
    assert.equal(log.listeners.size, 0);
  });

  it('reads again when the idle callback asks (an `end` written for a dead instance)', async () => {
    const log = new FakeLog();
    const sink = new FakeSink();
    log.append(event(1));
    let calls = 0;
    const { done } = follow(log, sink, {
      idleMs: 5,
      onIdle: () => {
        calls += 1;
        if (calls < 2) return false;
        log.stored.push(event(2, 'end')); // straight to the archive: no live event
        return true;
      },
    });
    await done;
    assert.deepEqual(sink.ids, ids(1, 2));
  });

  it('catches up in writes of about 64 KB, waiting for the sink between them', async () => {
    const log = new FakeLog();
    const sink = new FakeSink();
    sink.room = false;
    const big = 'x'.repeat(20 * 1024);
    for (let ms = 1; ms <= 10; ms++) log.stored.push(event(ms, 'token', big));
    log.stored.push(event(11, 'end'));
    await follow(log, sink).done;
    assert.equal(sink.ids.length, 11);
    assert.deepEqual(
      sink.writes.map((w) => w.length),
      [4, 4, 3],
    );
    assert.equal(sink.drains, 2);
  });

  it('calls onOverflow once when queued live events pass maxQueuedBytes', async () => {
    const log = new FakeLog();
    const sink = new FakeSink();
    let overflows = 0;
    const { done, gone } = follow(log, sink, { maxQueuedBytes: 10, onOverflow: () => (overflows += 1) });
    await waitFor(() => log.reads === 1);
    sink.room = false; // a reader that stopped reading: live events queue
    for (let ms = 1; ms <= 5; ms++) log.publish(event(ms, 'token', '"12345"'));
    assert.equal(overflows, 1);
    gone.abort();
    await done;
  });

  it('gives up on a gap that no read fills within 30 s', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    try {
      const log = new FakeLog();
      const sink = new FakeSink();
      const { done } = follow(log, sink);
      const failed = assert.rejects(done, UnfillableGapError);
      await nextTurn();
      log.publish(event(5)); // its predecessors are nowhere
      for (let i = 0; i < 40 && log.listeners.size > 0; i++) {
        await nextTurn();
        mock.timers.tick(1_000);
      }
      assert.equal(log.listeners.size, 0, 'gave up and unsubscribed');
      await failed;
    } finally {
      mock.timers.reset();
    }
  });
});
