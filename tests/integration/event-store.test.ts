import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setImmediate as nextTick } from 'node:timers/promises';
import { after, afterEach, before, describe, it } from 'node:test';
import { formatEventId, type RunEvent } from '../../src/domain/index.js';
import { MemoryEventStore } from '../../src/streaming/memory/memory-event-store.js';
import { RedisCancelBus } from '../../src/streaming/redis/redis-cancel-bus.js';
import { openRedis, type RedisConnections } from '../../src/streaming/redis/redis-connections.js';
import { RedisEventStore } from '../../src/streaming/redis/redis-event-store.js';
import { formatNotification } from '../../src/streaming/redis/redis-event-codec.js';
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
import {
  appendOverTicks,
  eventStoreContract,
  type Instances,
  ids,
  makeEvents,
  newRunId,
  type StoreOptions,
  written,
} from '../helpers/event-store-contract.js';

// --- the two implementations, as two instances ---

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

  it("hands each listener a remote run's end once, though a late notification names it again", async () => {
    pair = await openRedisPair();
    const runId = newRunId();
    const events = makeEvents(10);
    const seen: RunEvent[] = [];
    const stop = pair.reader.subscribe(runId, null, (event) => seen.push(event));
    await appendOverTicks(pair.writer, runId, events, 2);
    await waitFor(() => seen.at(-1)?.type === 'end', { what: 'the end event' });
    // The race under load: the read that found the end ran before the notification naming it
    // was handled. Here that notification comes (again) after the end was delivered.
    const end = events.at(-1) as RunEvent;
    const late = formatNotification({ instanceId: 'another-writer', runs: [[runId, end.id, true]] });
    await admin.publish(pair.keys.eventsChannel, late);
    // A later run's events, notified and read on the same two connections after it, show that the
    // late notification was handled and its read of the end answered.
    const probe = newRunId();
    const probeSeen: RunEvent[] = [];
    const stopProbe = pair.reader.subscribe(probe, null, (event) => probeSeen.push(event));
    await appendOverTicks(pair.writer, probe, makeEvents(3), 1);
    await waitFor(() => probeSeen.at(-1)?.type === 'end', { what: 'the probe run to end' });
    assert.deepEqual(seen, events, 'every event once, the end once');
    stop();
    stopProbe();
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
