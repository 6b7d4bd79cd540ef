import assert from 'node:assert/strict';
import { describe, it, mock } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { compareEventIds, type EventId, formatEventId, type RunEvent, takeChain } from '../../src/domain/index.js';
import { pageOfBytes } from '../../src/streaming/event-store.js';
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

  /** Each read's limit and byte bound. */
  readonly pages: Array<{ limit: number; maxBytes: number | undefined }> = [];

  async read(_runId: string, after: EventId | null, limit: number, maxBytes?: number): Promise<RunEvent[]> {
    this.reads += 1;
    this.pages.push({ limit, maxBytes });
    const newer = this.stored.filter((e) => after === null || compareEventIds(e.id, after) > 0);
    return takeChain(pageOfBytes(newer.slice(0, limit), maxBytes ?? Number.MAX_SAFE_INTEGER), after);
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

  it('sends nothing after a resume point beyond the end, and ends when the run ends', async () => {
    // A running run resumed from an id later than any of its events: what comes live up to
    // the resume point was "already sent", and so is the `end`, which ends the follow.
    const log = new FakeLog();
    const sink = new FakeSink();
    log.append(event(1));
    const { done, idle } = follow(log, sink, { after: { ms: 99, seq: 0 }, idleMs: 5 });
    await waitFor(() => idle.calls >= 2, { what: 'the follower to be parked, idle' });
    log.append(event(2));
    log.append(event(3, 'end'));
    await done;
    assert.deepEqual(sink.writes, []);
    assert.equal(log.listeners.size, 0, 'unsubscribed');
  });

  it('ends on an `end` before the resume point that arrives while it is not parked', async () => {
    const log = new FakeLog();
    const sink = new FakeSink();
    sink.room = false; // not parked on the hot path: live events queue
    const { done } = follow(log, sink, { after: { ms: 99, seq: 0 } });
    await waitFor(() => log.reads === 1);
    log.append(event(1), event(2, 'end'));
    await done;
    assert.deepEqual(sink.writes, []);
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
    assert.equal(sink.drains, 3, 'once before the page (the sink is full from the start), then between writes');
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

  it('when its own reading lags (the sink keeps up), drops the queued live events and reads them from the log', async () => {
    const log = new FakeLog();
    const sink = new FakeSink();
    const { done } = follow(log, sink, { maxQueuedBytes: 10, onOverflow: () => assert.fail('a listener that keeps up is never cut off') });
    await waitFor(() => log.reads === 1);
    log.append(event(1));
    await waitFor(() => sink.ids.length === 1);
    // Events 3..8 arrive while event 2 is missing (a gap): they queue past maxQueuedBytes.
    const events = [2, 3, 4, 5, 6, 7, 8].map((ms) => event(ms, ms === 8 ? 'end' : 'token', '"12345"'));
    log.stored.push(...events);
    for (const e of events.slice(1)) log.publish(e);
    await done;
    assert.deepEqual(sink.ids, ['1-0', '2-0', '3-0', '4-0', '5-0', '6-0', '7-0', '8-0']);
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

  it('reads catch-up pages bounded in bytes, asking for as many events as a page holds at the size seen', async () => {
    const log = new FakeLog();
    const sink = new FakeSink();
    const big = 'x'.repeat(64 * 1024);
    for (let ms = 1; ms <= 20; ms++) log.stored.push(event(ms, 'token', JSON.stringify(big)));
    log.stored.push(event(21, 'end'));
    await follow(log, sink, { maxQueuedBytes: 200 * 1024 }).done;
    assert.equal(sink.ids.length, 21);
    const [first, second] = log.pages;
    assert.deepEqual(first, { limit: 16, maxBytes: 200 * 1024 }, 'at most SSE_MAX_BUFFER_BYTES per page');
    assert.equal(second?.limit, 3, 'as many 64 KB events as 200 KB hold, after the first page');
    assert.ok(log.pages.length >= 7, `${log.pages.length} pages of about 200 KB`);
  });

  it('reads the next catch-up page only once the sink has taken the last one', async () => {
    const log = new FakeLog();
    /** A client that reads only when told: every write fills its socket. */
    const sink = new (class extends FakeSink {
      release: () => void = () => undefined;
      override send(events: readonly RunEvent[]): boolean {
        this.room = false;
        return super.send(events);
      }
      override drained(): Promise<void> {
        this.drains += 1;
        return new Promise((resolve) => {
          this.release = () => {
            this.room = true;
            resolve();
          };
        });
      }
    })();
    const big = JSON.stringify('x'.repeat(100 * 1024));
    for (let ms = 1; ms <= 10; ms++) log.stored.push(event(ms, 'token', big));
    log.stored.push(event(11, 'end'));
    const { done } = follow(log, sink, { maxQueuedBytes: 256 * 1024 });
    // A page of 3 events (256 KB reached at the third), one write each; between writes, and
    // before the next page, the follower waits for the sink.
    for (let drains = 1; drains <= 3; drains++) {
      await waitFor(() => sink.drains === drains, { what: `wait ${drains} for the sink` });
      assert.equal(log.reads, 1, 'no second page while the sink holds the first');
      sink.release();
    }
    await waitFor(() => log.reads === 2, { what: 'the second page once the sink took the first' });
    for (;;) {
      const settled = await Promise.race([done.then(() => true), nextTurn().then(() => false)]);
      if (settled) break;
      sink.release();
    }
    assert.equal(sink.ids.length, 11);
  });
});
