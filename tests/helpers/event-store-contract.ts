import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setImmediate as nextTick } from 'node:timers/promises';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { eventBytes, formatEventId, type RunEvent } from '../../src/domain/index.js';
import type { EventStore } from '../../src/streaming/event-store.js';
import { waitFor } from './wait-for.js';
import { eventChain, FIRST_EVENT_MS } from './events.js';

/**
 * The contract every EventStore keeps, one suite run against each implementation (in-process,
 * Redis, Redis Cluster): `eventStoreContract(name, remote, open)`.
 */

// --- fixtures ---

/** `count` chained events of one run starting at `firstMs`: several share a millisecond, the last is `end` when asked. */
export function makeEvents(count: number, { end = true, firstMs = FIRST_EVENT_MS } = {}): RunEvent[] {
  const data = Array.from({ length: count }, (_, i) => ({ i, text: `token ${i} é 🚀 "quoted" \\ \n ${'x'.repeat(i % 7)}` }));
  return eventChain(data, { firstMs, perMs: 3, type: (i) => (i === 0 ? 'status' : end && i === count - 1 ? 'end' : 'token') });
}

export const ids = (events: readonly RunEvent[]): string[] => events.map((event) => formatEventId(event.id));
export const newRunId = (): string => `run-${randomUUID()}`;

/** Appends `events` in `ticks` groups, yielding to the event loop between groups. */
/** Waits until the store has written everything appended to it. */
export async function written(store: EventStore): Promise<void> {
  await waitFor(() => store.stats().pendingEvents === 0, { what: 'the appended events to be written' });
}

export async function appendOverTicks(store: EventStore, runId: string, events: readonly RunEvent[], ticks: number): Promise<void> {
  const size = Math.ceil(events.length / ticks);
  for (let i = 0; i < events.length; i += size) {
    for (const event of events.slice(i, i + size)) store.append(runId, event);
    await nextTick();
  }
}

// --- what a suite opens ---

export interface Instances {
  /** The instance that appends. */
  readonly writer: EventStore;
  /** Another instance (the same store in-process). */
  readonly reader: EventStore;
  /** Whether reader is a different instance, fed through Redis. */
  readonly remote: boolean;
  /** Connections an instance holds once open (default: 2 when remote, else 0). */
  readonly connectionsAtStart?: number;
  readonly errors: unknown[];
  close(): Promise<void>;
}

export interface StoreOptions {
  readonly maxLen?: number;
  readonly maxBytes?: number;
  readonly ttlSeconds?: number;
}

// --- the contract every EventStore keeps ---

/** `remote`: the store has another instance to follow runs from (the in-process one has not). */
export function eventStoreContract(name: string, remote: boolean, open: (options?: StoreOptions) => Promise<Instances>): void {
  describe(`EventStore contract: ${name}`, () => {
    let stores: Instances;

    beforeEach(async () => {
      stores = await open();
    });

    afterEach(async () => {
      await stores.close();
      assert.deepEqual(stores.errors, [], 'no errors reported');
    });

    it('reads appended events from the start, after an id, and up to a limit', async () => {
      const { writer, reader } = stores;
      const runId = newRunId();
      const events = makeEvents(10);
      for (const event of events) writer.append(runId, event);

      assert.deepEqual(await writer.read(runId, null, 100), events, 'the writing instance reads its own writes');
      await waitFor(async () => (await reader.read(runId, null, 100)).length === 10, { what: 'the other instance to see 10 events' });
      for (const store of [writer, reader]) {
        assert.deepEqual(await store.read(runId, null, 100), events);
        assert.deepEqual(await store.read(runId, (events[3] as RunEvent).id, 100), events.slice(4));
        assert.deepEqual(await store.read(runId, (events[2] as RunEvent).id, 4), events.slice(3, 7));
        assert.deepEqual(await store.read(runId, null, 3), events.slice(0, 3));
        assert.deepEqual(await store.read(runId, (events[9] as RunEvent).id, 100), []);
        assert.deepEqual(await store.read(runId, null, 0), []);
        assert.deepEqual(await store.read(newRunId(), null, 100), [], 'an unknown run has no events');
      }
    });

    it('round-trips ids, prev and the JSON text exactly', async () => {
      const runId = newRunId();
      const first: RunEvent = { id: { ms: 1, seq: 0 }, prev: null, type: 'status', json: '{"status":"running"}' };
      const second: RunEvent = { id: { ms: 1, seq: 999_999_999 }, prev: first.id, type: 'message', json: '["a",1,null,true,{"n":-2.5}]' };
      const third: RunEvent = { id: { ms: 999_999_999_999_999, seq: 0 }, prev: second.id, type: 'tool', json: '"plain string"' };
      const fourth: RunEvent = { id: { ms: 999_999_999_999_999, seq: 7 }, prev: third.id, type: 'end', json: 'null' };
      const events = [first, second, third, fourth];
      for (const event of events) stores.writer.append(runId, event);
      await waitFor(async () => (await stores.reader.read(runId, null, 10)).length === 4, { what: '4 events on the other instance' });
      assert.deepEqual(await stores.reader.read(runId, null, 10), events);
      assert.deepEqual(await stores.writer.read(runId, first.id, 10), events.slice(1));
    });

    it('keeps the order of 1000 events appended in one tick', async () => {
      const runId = newRunId();
      const events = makeEvents(1_000);
      for (const event of events) stores.writer.append(runId, event);
      assert.deepEqual(ids(await stores.writer.read(runId, null, 5_000)), ids(events));
      await waitFor(async () => (await stores.reader.read(runId, null, 5_000)).length === 1_000, { what: '1000 events' });
      assert.deepEqual(await stores.reader.read(runId, null, 5_000), events);
    });

    it("feeds the writing instance's listeners in-process, as each event is appended", () => {
      const runId = newRunId();
      const events = makeEvents(5);
      const seen: RunEvent[] = [];
      const stop = stores.writer.subscribe(runId, null, (event) => seen.push(event));
      for (const [index, event] of events.entries()) {
        stores.writer.append(runId, event);
        assert.equal(seen.length, index + 1, 'delivered before append returns');
      }
      assert.deepEqual(seen, events);
      stop();
    });

    it('stops feeding a listener that unsubscribed (on the writing instance)', () => {
      const runId = newRunId();
      const events = makeEvents(6);
      const stopped: RunEvent[] = [];
      const kept: RunEvent[] = [];
      const stop = stores.writer.subscribe(runId, null, (event) => stopped.push(event));
      const stopKept = stores.writer.subscribe(runId, null, (event) => kept.push(event));
      for (const event of events.slice(0, 2)) stores.writer.append(runId, event);
      stop();
      stop(); // idempotent
      for (const event of events.slice(2)) stores.writer.append(runId, event);
      assert.deepEqual(stopped, events.slice(0, 2));
      assert.deepEqual(kept, events);
      stopKept();
    });

    it('hands the `end` to a listener that follows from past it (a client resumed after any event)', async () => {
      // The other instance hears the writer's notifications (a probe run's event reached it).
      const probe = newRunId();
      let probed = false;
      const stopProbe = stores.reader.subscribe(probe, null, () => (probed = true));
      stores.writer.append(probe, makeEvents(1)[0] as RunEvent);
      await waitFor(() => probed, { what: 'the probe event on the other instance' });
      stopProbe();

      const runId = newRunId();
      const events = makeEvents(20);
      const end = events.at(-1) as RunEvent;
      const beyond = { ms: end.id.ms + 3_600_000, seq: 0 };
      const ends: RunEvent[][] = [[], []];
      const stops = [stores.writer, stores.reader].map((store, index) =>
        store.subscribe(runId, beyond, (event) => {
          if (event.type === 'end') ends[index]?.push(event);
        }),
      );
      await appendOverTicks(stores.writer, runId, events, 4);
      await waitFor(() => ends.every((seen) => seen.length > 0), { what: 'the end on both instances' });
      assert.deepEqual(ends, [[end], [end]]);
      for (const stop of stops) stop();
    });

    it('reports a listener that throws and still feeds the others', () => {
      const runId = newRunId();
      const seen: RunEvent[] = [];
      const stopThrowing = stores.writer.subscribe(runId, null, () => {
        throw new Error('listener failed');
      });
      const stop = stores.writer.subscribe(runId, null, (event) => seen.push(event));
      const events = makeEvents(3);
      for (const event of events) stores.writer.append(runId, event);
      stopThrowing();
      stop();
      assert.deepEqual(seen, events);
      assert.equal(stores.errors.length, 3);
      assert.ok(stores.errors.every((error) => error instanceof Error && error.message === 'listener failed'));
      stores.errors.length = 0;
    });

    it('answers ping, and close is idempotent', async () => {
      await stores.writer.ping();
      await stores.reader.ping();
      const first = stores.writer.close();
      assert.equal(stores.writer.close(), first, 'the same promise');
      await first;
      await assert.rejects(stores.writer.ping());
    });

    describe('bounds', () => {
      /** `count` chained events of `textBytes` characters of text each, and what each costs (`eventBytes`). */
      const sized = (count: number, textBytes: number) => {
        const events = eventChain(
          Array.from({ length: count }, () => ({ text: 'x'.repeat(textBytes) })),
          { perMs: 2 },
        );
        return { events, bytes: eventBytes(events[0] as RunEvent) };
      };

      /** Reads everything the store keeps of the run, and checks it is the newest events, in order. */
      const kept = async (store: EventStore, runId: string, events: readonly RunEvent[]): Promise<RunEvent[]> => {
        await written(store);
        const stored = await store.read(runId, null, 100_000);
        assert.deepEqual(stored, events.slice(events.length - stored.length), 'the newest events, trimmed from the oldest');
        return stored;
      };

      it('keeps about the newest maxLen events of a run', async () => {
        await stores.close();
        stores = await open({ maxLen: 100 });
        const runId = newRunId();
        const events = makeEvents(1_000);
        await appendOverTicks(stores.writer, runId, events, 5);
        const stored = await kept(stores.writer, runId, events);
        // In-process: exactly; Redis (MAXLEN ~): whole nodes of its stream go, so about.
        assert.ok(stored.length >= 100 && stored.length < 400, `kept ${stored.length}`);
        if (!remote) assert.equal(stored.length, 100);
      });

      it('keeps about maxBytes of the newest events of a run (at least the newest one)', async () => {
        const { events, bytes } = sized(200, 1_000);
        await stores.close();
        stores = await open({ maxBytes: 20 * bytes });
        const runId = newRunId();
        await appendOverTicks(stores.writer, runId, events, 10);
        const stored = await kept(stores.writer, runId, events);
        assert.ok(stored.length >= 20 && stored.length <= 40, `kept ${stored.length} events of ${bytes} bytes`);
        if (!remote) assert.equal(stored.length, 20);

        const huge = sized(3, 50 * bytes);
        const hugeRun = newRunId();
        for (const event of huge.events) stores.writer.append(hugeRun, event);
        const hugeKept = await kept(stores.writer, hugeRun, huge.events);
        assert.ok(hugeKept.length >= 1 && hugeKept.length <= 3, `kept ${hugeKept.length} events larger than the bound`);
        if (!remote) assert.equal(hugeKept.length, 1);
      });

      it('reads pages up to the event that reaches maxBytes, at least one', async () => {
        const { events, bytes } = sized(10, 1_000);
        const runId = newRunId();
        for (const event of events) stores.writer.append(runId, event);
        for (const store of [stores.writer, stores.reader]) {
          await waitFor(async () => (await store.read(runId, null, 100)).length === 10, { what: '10 events' });
          assert.deepEqual(await store.read(runId, null, 100, 3 * bytes), events.slice(0, 3));
          assert.deepEqual(await store.read(runId, null, 100, 3 * bytes - 1), events.slice(0, 3), 'the one reaching it included');
          assert.deepEqual(await store.read(runId, (events[4] as RunEvent).id, 100, 1), events.slice(5, 6));
          assert.deepEqual(await store.read(runId, null, 2, 100 * bytes), events.slice(0, 2), 'the count bounds it too');
        }
      });
    });

    it('stats start empty', () => {
      const stats = stores.writer.stats();
      assert.equal(stats.pendingEvents, 0);
      assert.equal(stats.inFlightOps, 0);
      assert.equal(stats.connections, stores.connectionsAtStart ?? (stores.remote ? 2 : 0));
    });

    if (!remote) return;
    describe('following a run written by another instance', () => {
      it('delivers every event exactly once, in order', async () => {
        const runId = newRunId();
        const events = makeEvents(300);
        const seen: RunEvent[] = [];
        const stop = stores.reader.subscribe(runId, null, (event) => seen.push(event));
        await appendOverTicks(stores.writer, runId, events, 15);
        await waitFor(() => seen.at(-1)?.type === 'end', { what: 'the end event on the other instance' });
        assert.deepEqual(seen, events);
        stop();
      });

      it('follows from `after` on', async () => {
        const runId = newRunId();
        const events = makeEvents(40);
        for (const event of events.slice(0, 20)) stores.writer.append(runId, event);
        await stores.writer.read(runId, null, 1); // written
        const seen: RunEvent[] = [];
        const stop = stores.reader.subscribe(runId, (events[9] as RunEvent).id, (event) => seen.push(event));
        await appendOverTicks(stores.writer, runId, events.slice(20), 4);
        await waitFor(() => seen.at(-1)?.type === 'end', { what: 'the end event' });
        assert.deepEqual(seen, events.slice(10));
        stop();
      });

      it('stops feeding a listener that unsubscribed', async () => {
        const runId = newRunId();
        const events = makeEvents(60);
        const stopped: RunEvent[] = [];
        const kept: RunEvent[] = [];
        const stop = stores.reader.subscribe(runId, null, (event) => stopped.push(event));
        const stopKept = stores.reader.subscribe(runId, null, (event) => kept.push(event));
        await appendOverTicks(stores.writer, runId, events.slice(0, 20), 2);
        await waitFor(() => stopped.length > 0, { what: 'a first event' });
        stop();
        const countAtStop = stopped.length;
        await appendOverTicks(stores.writer, runId, events.slice(20), 4);
        await waitFor(() => kept.at(-1)?.type === 'end', { what: 'the end event' });
        assert.equal(stopped.length, countAtStop);
        assert.deepEqual(kept, events);
        stopKept();
      });
    });
  });
}
