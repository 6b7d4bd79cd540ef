import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { setImmediate as nextTick } from 'node:timers/promises';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { eventBytes, formatEventId, type RunEvent } from '../../src/domain/index.js';
import type { EventStore } from '../../src/streaming/event-store.js';
import { MemoryEventStore } from '../../src/streaming/memory/memory-event-store.js';
import { RedisCancelBus } from '../../src/streaming/redis/redis-cancel-bus.js';
import { openRedis, type RedisConnections } from '../../src/streaming/redis/redis-connections.js';
import { RedisEventStore } from '../../src/streaming/redis/redis-event-store.js';
import { RedisKeys } from '../../src/streaming/redis/redis-keys.js';
import {
  cleanupPrefix,
  clientsNamed,
  commandCalls,
  openTestClient,
  redisUrl,
  type TestRedisClient,
  uniquePrefix,
} from '../helpers/redis.js';
import { waitFor } from '../helpers/wait-for.js';
import { eventChain, FIRST_EVENT_MS } from '../helpers/events.js';

// --- fixtures ---

/** `count` chained events of one run starting at `firstMs`: several share a millisecond, the last is `end` when asked. */
function makeEvents(count: number, { end = true, firstMs = FIRST_EVENT_MS } = {}): RunEvent[] {
  const data = Array.from({ length: count }, (_, i) => ({ i, text: `token ${i} é 🚀 "quoted" \\ \n ${'x'.repeat(i % 7)}` }));
  return eventChain(data, { firstMs, perMs: 3, type: (i) => (i === 0 ? 'status' : end && i === count - 1 ? 'end' : 'token') });
}

const ids = (events: readonly RunEvent[]): string[] => events.map((event) => formatEventId(event.id));
const newRunId = (): string => `run-${randomUUID()}`;

/** Appends `events` in `ticks` groups, yielding to the event loop between groups. */
/** Waits until the store has written everything appended to it. */
async function written(store: EventStore): Promise<void> {
  await waitFor(() => store.stats().pendingEvents === 0, { what: 'the appended events to be written' });
}

async function appendOverTicks(store: EventStore, runId: string, events: readonly RunEvent[], ticks: number): Promise<void> {
  const size = Math.ceil(events.length / ticks);
  for (let i = 0; i < events.length; i += size) {
    for (const event of events.slice(i, i + size)) store.append(runId, event);
    await nextTick();
  }
}

// --- the two implementations, as two instances ---

interface Instances {
  /** The instance that appends. */
  readonly writer: EventStore;
  /** Another instance (the same store in-process). */
  readonly reader: EventStore;
  /** Whether reader is a different instance, fed through Redis. */
  readonly remote: boolean;
  readonly errors: unknown[];
  close(): Promise<void>;
}

interface RedisInstance {
  readonly instanceId: string;
  readonly redis: RedisConnections;
  readonly store: RedisEventStore;
}

interface RedisPair extends Instances {
  readonly prefix: string;
  readonly keys: RedisKeys;
  readonly a: RedisInstance;
  readonly b: RedisInstance;
}

interface StoreOptions {
  readonly maxLen?: number;
  readonly maxBytes?: number;
  readonly ttlSeconds?: number;
}

function openMemory({ ttlSeconds = 60, maxLen, maxBytes }: StoreOptions = {}): Promise<Instances> {
  const errors: unknown[] = [];
  const store = new MemoryEventStore({ ttlSeconds, maxLen, maxBytes, onError: (error) => errors.push(error) });
  return Promise.resolve({ writer: store, reader: store, remote: false, errors, close: () => store.close() });
}

/** Two instances on one key prefix, each with its own two connections. */
async function openRedisPair({ maxLen = 10_000, maxBytes, ttlSeconds = 600 }: StoreOptions = {}): Promise<RedisPair> {
  const prefix = uniquePrefix();
  const keys = new RedisKeys(prefix);
  const errors: unknown[] = [];
  const onError = (error: unknown): void => {
    errors.push(error);
  };
  const tag = randomBytes(4).toString('hex');
  const open = async (role: string): Promise<RedisInstance> => {
    const instanceId = `test-${role}-${tag}`;
    const redis = await openRedis({ url: redisUrl(), instanceId, commandsQueueMax: 20_000, onError });
    const store = new RedisEventStore({ redis, keys, instanceId, maxLen, maxBytes, ttlSeconds, onError });
    store.start();
    return { instanceId, redis, store };
  };
  const a = await open('a');
  const b = await open('b');
  return {
    writer: a.store,
    reader: b.store,
    remote: true,
    errors,
    prefix,
    keys,
    a,
    b,
    async close() {
      await Promise.all([a.store.close(), b.store.close()]);
      await Promise.all([a.redis.close(), b.redis.close()]);
      assert.equal(a.redis.connectionCount() + b.redis.connectionCount(), 0);
      await cleanupPrefix(prefix);
    },
  };
}

// --- the contract every EventStore keeps ---

/** `remote`: the store has another instance to follow runs from (the in-process one has not). */
function eventStoreContract(name: string, remote: boolean, open: (options?: StoreOptions) => Promise<Instances>): void {
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
      assert.equal(stats.connections, stores.remote ? 2 : 0);
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

eventStoreContract('MemoryEventStore', false, openMemory);
eventStoreContract('RedisEventStore (two instances)', true, openRedisPair);

// --- what only the Redis store promises ---

describe('RedisEventStore on Redis', () => {
  let admin: TestRedisClient;
  let pair: RedisPair | undefined;
  let errorsExpected = false;

  before(async () => {
    admin = await openTestClient();
  });

  after(() => {
    admin.destroy();
  });

  afterEach(async () => {
    const current = pair;
    pair = undefined;
    if (current === undefined) return;
    await current.close();
    if (!errorsExpected) assert.deepEqual(current.errors, [], 'no errors reported');
    errorsExpected = false;
  });

  it('sets the TTL at the first write, refreshes it only when due, and restarts it at the end', async () => {
    pair = await openRedisPair({ ttlSeconds: 120 });
    const runId = newRunId();
    const key = pair.keys.runStream(runId);
    const events = makeEvents(10);
    for (const event of events.slice(0, 5)) pair.writer.append(runId, event);
    await written(pair.writer);
    let ttl = await admin.ttl(key);
    assert.ok(ttl > 0 && ttl <= 120, `TTL after the first write is ${ttl}`);

    await admin.expire(key, 30); // as if the refresh were 90 s old
    for (const event of events.slice(5, 9)) pair.writer.append(runId, event);
    await written(pair.writer);
    ttl = await admin.ttl(key);
    assert.ok(ttl > 0 && ttl <= 30, `a refresh within ttlSeconds/4 is not due, TTL is ${ttl}`);

    pair.writer.append(runId, events[9] as RunEvent);
    await written(pair.writer);
    ttl = await admin.ttl(key);
    assert.ok(ttl > 30 && ttl <= 120, `TTL after the end event is ${ttl}`);
  });

  it('answers a reader of a run it writes from memory until the events are written', async () => {
    pair = await openRedisPair();
    const runId = newRunId();
    const events = makeEvents(6);
    for (const event of events.slice(0, 3)) pair.writer.append(runId, event);
    // Answered before the flush (a setImmediate away) ran: from memory, no round trip.
    assert.deepEqual(await pair.writer.read(runId, null, 10), events.slice(0, 3));
    assert.deepEqual(await pair.writer.read(runId, (events[0] as RunEvent).id, 1), events.slice(1, 2));
    assert.equal(pair.writer.stats().pendingEvents, 3);
    await written(pair.writer);
    for (const event of events.slice(3)) pair.writer.append(runId, event);
    // A reader missing written events too reads them from Redis, with the rest once written.
    assert.deepEqual(await pair.writer.read(runId, null, 10), events);
    assert.deepEqual(await pair.writer.read(runId, (events[3] as RunEvent).id, 10), events.slice(4));
  });

  it('keeps exactly 2 connections per instance with 200 listeners', async () => {
    pair = await openRedisPair();
    const runs = Array.from({ length: 100 }, newRunId);
    const ends = new Map<string, number>();
    const stops: Array<() => void> = [];
    for (const runId of runs) {
      for (let n = 0; n < 2; n++) {
        stops.push(
          pair.reader.subscribe(runId, null, (event) => {
            if (event.type === 'end') ends.set(`${runId}/${n}`, (ends.get(`${runId}/${n}`) ?? 0) + 1);
          }),
        );
      }
    }
    for (const runId of runs) for (const event of makeEvents(4)) pair.writer.append(runId, event);
    await waitFor(() => ends.size === 200, { what: '200 listeners to get their end event' });
    assert.ok([...ends.values()].every((count) => count === 1));

    const mine = await clientsNamed(admin, `agentd:${pair.b.instanceId}:`);
    assert.deepEqual(mine.map((info) => info.name).sort(), [
      `agentd:${pair.b.instanceId}:commands`,
      `agentd:${pair.b.instanceId}:subscriber`,
    ]);
    assert.equal(pair.reader.stats().connections, 2);
    assert.equal((await clientsNamed(admin, `agentd:${pair.a.instanceId}:`)).length, 2);
    for (const stop of stops) stop();
  });

  it('costs about one command per event with a remote listener', async (t) => {
    pair = await openRedisPair();
    const runs = Array.from({ length: 20 }, newRunId);
    const perRun = new Map(runs.map((runId) => [runId, makeEvents(50)]));
    let seen = 0;
    const counted = ['xadd', 'publish', 'xread', 'expire', 'xrange'];
    const sum = (calls: Map<string, number>): number => counted.reduce((total, name) => total + (calls.get(name) ?? 0), 0);

    const before = sum(await commandCalls(admin));
    const stops = runs.map((runId) => pair!.reader.subscribe(runId, null, () => void (seen += 1)));
    for (let tick = 0; tick < 10; tick++) {
      for (const runId of runs)
        for (const event of (perRun.get(runId) as RunEvent[]).slice(tick * 5, tick * 5 + 5)) pair.writer.append(runId, event);
      await nextTick();
    }
    await waitFor(() => seen === 1_000, { what: '1000 events on the other instance' });
    const commands = sum(await commandCalls(admin)) - before;
    const perEvent = commands / 1_000;
    t.diagnostic(`${commands} commands for 1000 events: ${perEvent.toFixed(3)} per event`);
    // INFO commandstats is server-wide: a test file writing to the same Redis at the same time adds to it.
    assert.ok(perEvent <= 1.2, `${perEvent} commands per event`);
    for (const stop of stops) stop();
  });

  it('finds a cancel request published while the subscriber was away, once it is back', async () => {
    pair = await openRedisPair();
    errorsExpected = true; // the killed connection reports its error
    const busB = new RedisCancelBus({ redis: pair.b.redis, keys: pair.keys, ttlSeconds: 3_600 });
    const runId = newRunId();
    const received: string[] = [];
    busB.onRequest(
      (id) => received.push(id),
      () => [runId],
    );
    const name = `agentd:${pair.b.instanceId}:subscriber`;
    await waitFor(async () => (await clientsNamed(admin, name)).length === 1, { what: 'the subscriber connection' });
    const [subscriber] = await clientsNamed(admin, name);
    // As if it was published while the subscriber was disconnected: the key is there, the message is lost.
    await admin.set(pair.keys.cancelRequested(runId), '1', { EX: 60 });
    await admin.sendCommand(['CLIENT', 'KILL', 'ID', (subscriber as { id: string }).id]);
    await waitFor(() => received.includes(runId), { what: 'the missed cancel request to be found' });
  });

  it('carries a cancel request to the other instance', async () => {
    pair = await openRedisPair();
    const busA = new RedisCancelBus({ redis: pair.a.redis, keys: pair.keys, ttlSeconds: 3_600 });
    const busB = new RedisCancelBus({ redis: pair.b.redis, keys: pair.keys, ttlSeconds: 3_600 });
    const received: string[] = [];
    busB.onRequest(
      (runId) => received.push(runId),
      () => [],
    );
    await waitFor(async () => (await admin.pubSubNumSub(pair!.keys.cancelChannel))[pair!.keys.cancelChannel] === 1, {
      what: 'the cancel subscription',
    });
    const runId = newRunId();
    assert.equal(busB.heardBefore(runId), false);
    await busA.request(runId);
    await waitFor(() => received.includes(runId), { what: 'the cancel request on the other instance' });
    assert.deepEqual(received, [runId]);
    // Remembered for a run that registers after the request reached its instance.
    assert.equal(busB.heardBefore(runId), true);
    assert.equal(busA.heardBefore(runId), true);
    const ttl = await admin.ttl(pair.keys.cancelRequested(runId));
    assert.ok(ttl > 0 && ttl <= 3_600, `cancel key TTL is ${ttl}`);
    assert.equal(busA.heardBefore(newRunId()), false);
  });

  for (const connection of ['subscriber', 'commands'] as const) {
    it(`delivers every event exactly once after its ${connection} connection is killed`, async () => {
      pair = await openRedisPair();
      errorsExpected = true; // the killed connection reports its error
      const runId = newRunId();
      const events = makeEvents(300);
      const lastId = formatEventId((events.at(-1) as RunEvent).id);
      const name = `agentd:${pair.b.instanceId}:${connection}`;
      const [original] = await clientsNamed(admin, name);
      assert.ok(original !== undefined);
      const kill = (): Promise<number> => admin.sendCommand<number>(['CLIENT', 'KILL', 'ID', original.id]);
      let killed: Promise<number> | undefined;
      // Commands: killed as the final notification reaches the reader, so the XREAD it causes
      // goes out on a connection Redis is closing. (This listener runs before the store's.)
      const onNotification = (message: string): void => {
        if (connection === 'commands' && killed === undefined && message.includes(lastId)) killed = kill();
      };
      await pair.b.redis.subscribe(pair.keys.eventsChannel, onNotification);
      const seen: RunEvent[] = [];
      const stop = pair.reader.subscribe(runId, null, (event) => seen.push(event));

      await appendOverTicks(pair.writer, runId, events.slice(0, 290), 20);
      await waitFor(() => seen.length >= 100, { what: 'the listener to be fed' });
      // Subscriber: killed in the tick the last events (end included) are written, so their
      // notification reaches Redis while the reader is disconnected (pub/sub delivers at most once).
      if (connection === 'subscriber') killed = kill();
      for (const event of events.slice(290)) pair.writer.append(runId, event);
      assert.equal(await waitFor(() => killed, { what: 'the kill' }), 1);
      // Either way, only the reader's re-read on reconnecting can deliver the last events.
      await waitFor(() => seen.at(-1)?.type === 'end', { what: 'the end event after the reconnect' });
      assert.deepEqual(ids(seen), ids(events));
      assert.deepEqual(seen, events);
      await waitFor(
        async () => {
          const named = await clientsNamed(admin, name);
          return named.length === 1 && named[0]?.id !== original.id;
        },
        { what: `the ${connection} connection to reconnect under its name` },
      );
      assert.ok(pair.errors.length > 0, 'the disconnect was reported');
      stop();
      await pair.b.redis.unsubscribe(pair.keys.eventsChannel, onNotification);
    });
  }
});
