import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, afterEach, before, describe, it } from 'node:test';
import { createClient } from 'redis';
import type { EventArchiveRepository } from '../../src/db/event-archive-repository.js';
import { type EventId, type RunEvent } from '../../src/domain/index.js';
import type { EventArchiver } from '../../src/streaming/event-archiver.js';
import { EventLog } from '../../src/streaming/event-log.js';
import { openRedis, type RedisConnections } from '../../src/streaming/redis/redis-connections.js';
import { RedisEventStore } from '../../src/streaming/redis/redis-event-store.js';
import { RedisKeys } from '../../src/streaming/redis/redis-keys.js';
import { type FollowSink, RunFollower } from '../../src/streaming/run-follower.js';
import { ids, makeEvents, newRunId } from '../helpers/event-store-contract.js';
import { type PrivateRedis, startPrivateRedis } from '../helpers/private-redis.js';
import { commandCalls } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait-for.js';

/**
 * Many listeners of a run on an instance that does not write it: their catch-up reads are shared
 * (the run's catch-up cache), so the XRANGEs Redis answers do not grow with their number. On a
 * Redis server of this file alone, so that INFO commandstats counts these tests' commands only.
 */

/** A sink that takes everything at once and keeps what it got. */
class CollectingSink implements FollowSink {
  readonly events: RunEvent[] = [];
  readonly hasRoom = true;
  send(events: readonly RunEvent[]): boolean {
    this.events.push(...events);
    return true;
  }
  async drained(): Promise<void> {}
  bytesOf(event: RunEvent): number {
    return event.json.length;
  }
}

interface Instance {
  readonly redis: RedisConnections;
  readonly store: RedisEventStore;
  readonly log: EventLog;
}

/** The archive holds nothing: what a listener gets comes from Redis or the cache. */
const emptyArchive = { read: async () => [], endId: async () => null } as unknown as EventArchiveRepository;

describe('catch-up of a remote run, shared by its listeners on an instance', () => {
  let server: PrivateRedis;
  let admin: ReturnType<typeof createClient>;
  let instances: Instance[] = [];
  let errors: unknown[] = [];
  const stops: AbortController[] = [];

  before(async () => {
    server = await startPrivateRedis();
    admin = createClient({ url: server.url });
    await admin.connect();
  });
  after(async () => {
    await admin?.quit();
    await server?.stop();
  });
  afterEach(async () => {
    for (const stop of stops.splice(0)) stop.abort();
    await Promise.all(instances.map((instance) => instance.store.close()));
    await Promise.all(instances.map((instance) => instance.redis.close()));
    instances = [];
    assert.deepEqual(errors, [], 'no errors reported');
    errors = [];
  });

  /** A writer and a reader instance on one key prefix; the reader's caches share `catchUpCacheBytes`. */
  async function openPair(catchUpCacheBytes?: number): Promise<{ writer: Instance; reader: Instance }> {
    const keys = new RedisKeys(`t${randomBytes(4).toString('hex')}:`);
    const onError = (error: unknown) => void errors.push(error);
    const open = async (role: string): Promise<Instance> => {
      const instanceId = `${role}-${randomBytes(3).toString('hex')}`;
      const redis = await openRedis({ url: server.url, instanceId, commandsQueueMax: 20_000, onError });
      const store = new RedisEventStore({ redis, keys, instanceId, maxLen: 10_000, ttlSeconds: 600, onError, catchUpCacheBytes });
      store.start();
      const log = new EventLog({ store, archiver: {} as EventArchiver, archive: emptyArchive, onError });
      return { redis, store, log };
    };
    instances = [await open('writer'), await open('reader')];
    return { writer: instances[0] as Instance, reader: instances[1] as Instance };
  }

  /** A listener of the run on `instance` from `after` on, as an SSE stream follows it: what it got so far, and all of it once it ends. */
  function follow(instance: Instance, runId: string, after: EventId | null = null): { got: RunEvent[]; done: Promise<RunEvent[]> } {
    const stop = new AbortController();
    stops.push(stop);
    const sink = new CollectingSink();
    const follower = new RunFollower({
      eventLog: instance.log,
      runId,
      after,
      sink,
      signal: stop.signal,
      onIdle: () => false,
      idleMs: 60_000,
      maxQueuedBytes: 1024 * 1024,
      onOverflow: () => errors.push(new Error('a listener overflowed')),
    });
    return { got: sink.events, done: follower.follow().then(() => sink.events) };
  }

  const listen = (instance: Instance, runId: string, after: EventId | null = null) => follow(instance, runId, after).done;

  /** XRANGEs Redis answered while `work` ran. */
  async function xrangesDuring(work: () => Promise<void>): Promise<number> {
    const before = (await commandCalls(admin)).get('xrange') ?? 0;
    await work();
    return ((await commandCalls(admin)).get('xrange') ?? 0) - before;
  }

  /** Appends the run's events on the writer, `perTick` every few ms. */
  async function emit(writer: Instance, runId: string, events: readonly RunEvent[], perTick: number): Promise<void> {
    for (let i = 0; i < events.length; i += perTick) {
      for (const event of events.slice(i, i + perTick)) writer.store.append(runId, event);
      await sleep(5);
    }
  }

  it('100 listeners joining a run as it streams each get every event once, in order, for a few XRANGEs in all', async (t) => {
    const { writer, reader } = await openPair();
    const runId = newRunId();
    const events = makeEvents(200);
    const xranges = await xrangesDuring(async () => {
      const emitting = emit(writer, runId, events, 2);
      const listeners: Array<Promise<RunEvent[]>> = [];
      for (let i = 0; i < 100; i++) {
        listeners.push(listen(reader, runId));
        await sleep(1);
      }
      await emitting;
      for (const got of await Promise.all(listeners)) assert.deepEqual(ids(got), ids(events));
    });
    t.diagnostic(`${xranges} XRANGEs for 100 listeners`);
    assert.ok(xranges <= 20, `${xranges} XRANGEs for 100 listeners`);
    await waitFor(() => reader.store.catchUpCacheBytes === 0, { what: 'the cache released with its last listener' });
  });

  it('serves 50 listeners arriving at once at a finished run, and one resuming after an event, for a few XRANGEs', async (t) => {
    const { writer, reader } = await openPair();
    const runId = newRunId();
    const events = makeEvents(300);
    await emit(writer, runId, events, 300);
    await writer.store.written();
    const xranges = await xrangesDuring(async () => {
      const listeners = Array.from({ length: 50 }, () => listen(reader, runId));
      const resumed = listen(reader, runId, (events[199] as RunEvent).id);
      assert.deepEqual(ids(await resumed), ids(events.slice(200)));
      for (const got of await Promise.all(listeners)) assert.deepEqual(ids(got), ids(events));
    });
    t.diagnostic(`${xranges} XRANGEs for 51 listeners`);
    assert.ok(xranges <= 10, `${xranges} XRANGEs for 51 listeners`);
  });

  it('holds no more than its budget, and past it falls back to Redis reads: every listener still gets every event once, in order', async () => {
    const events = makeEvents(200);
    const eventBytes = (events[1] as RunEvent).json.length + 128;
    const budget = 20 * eventBytes;
    const { writer, reader } = await openPair(budget);
    const runId = newRunId();
    const emitting = emit(writer, runId, events, 1);
    const listeners: Array<{ got: RunEvent[]; done: Promise<RunEvent[]> }> = [];
    const xranges = await xrangesDuring(async () => {
      // One at a time, each once it has its first events: no two share a read under way.
      for (let i = 0; i < 20; i++) {
        const listener = follow(reader, runId);
        listeners.push(listener);
        await waitFor(() => listener.got.length >= 30, { what: `listener ${i}'s first events` });
        assert.ok(reader.store.catchUpCacheBytes <= budget, `${reader.store.catchUpCacheBytes} bytes cached`);
      }
      await emitting;
      for (const got of await Promise.all(listeners.map((listener) => listener.done))) assert.deepEqual(ids(got), ids(events));
    });
    assert.ok(xranges >= 19, `${xranges} XRANGEs: the cache holds the first pages, the rest is read from Redis`);
    assert.equal(reader.store.catchUpCacheBytes, 0);
  });

  it('keeps a resumed listener exact though the cache holds the run from its start', async () => {
    const { writer, reader } = await openPair();
    const runId = newRunId();
    const events = makeEvents(60);
    const emitting = emit(writer, runId, events, 1);
    const fromStart = [listen(reader, runId), listen(reader, runId)];
    await waitFor(() => reader.store.catchUpCacheBytes > 0, { what: 'the cache' });
    const resumeAt = events[20] as RunEvent;
    await waitFor(async () => (await reader.store.read(runId, resumeAt.id, 1)).length > 0, { what: 'event 21 in Redis' });
    const resumed = listen(reader, runId, resumeAt.id);
    await emitting;
    assert.deepEqual(ids(await resumed), ids(events.slice(21)));
    for (const got of await Promise.all(fromStart)) assert.deepEqual(ids(got), ids(events));
  });
});
