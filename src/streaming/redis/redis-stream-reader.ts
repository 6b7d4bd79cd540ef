import { compareEventIds, type EventId, formatEventId, type RunEvent } from '../../domain/index.js';
import type { EventListener } from '../event-store.js';
import type { RedisConnections } from './redis-connections.js';
import { parseNotification, parseStreamEntries, parseXReadReply } from './redis-event-codec.js';
import type { RedisKeys } from './redis-keys.js';
import { settledWithin } from '../../concurrency/deadline.js';
import type { ByteBudget } from '../../lib/byte-budget.js';
import { CatchUpCache, type CatchUpCacheLimits } from './catch-up-cache.js';

export interface RedisStreamReaderOptions {
  readonly redis: RedisConnections;
  readonly keys: RedisKeys;
  /** This instance's id in notifications: its own are ignored. */
  readonly instanceId: string;
  /**
   * Whether this instance writes the run (the writer knows): its listeners are fed in-process
   * through `deliver`, never by reading the run back.
   */
  readonly isWriting: (runId: string) => boolean;
  /** Failed reads and subscriptions, malformed notifications and entries, listener exceptions. */
  readonly onError: (error: unknown) => void;
  /** What each remote run's catch-up cache holds at most, and the bytes all of them share. */
  readonly catchUpCache: { readonly limits: CatchUpCacheLimits; readonly budget: ByteBudget };
}

/** The listeners of one run on this instance. */
interface Follow {
  readonly listeners: Set<EventListener>;
  /** Highest id handed to the listeners; nothing at or below it is delivered again, but an `end`. */
  delivered: EventId | null;
  /** Listeners that got the run's `end`: an `end` read again (a late notification naming it) is not theirs twice. */
  readonly ended: Set<EventListener>;
  /**
   * Whether a read of the run's stream, sent while notifications reached this reader, got to
   * its end since this follow began: from then on every event after `delivered` reaches the
   * listeners (notifications name the newer ones).
   */
  synced: boolean;
  /** A remote run's events for its next listeners' catch-up, while two listeners or more follow it here. */
  cache: CatchUpCache | undefined;
}

/** XREAD COUNT: entries per run per read; a run that fills it is read again. */
const READ_COUNT = 1_000;
/** Streams named in one XREAD (Redis pays per key per call). */
const READ_KEYS_MAX = 1_000;
const CLOSE_TIMEOUT_MS = 5_000;

/**
 * The following half of the Redis event store: the listeners of each run on this instance.
 * Listeners of runs this instance writes are fed in-process (`deliver`); listeners of other
 * runs are fed by batched, non-blocking XREADs when another instance's notification names
 * their run. Uses only the two connections it is given, whatever the number of runs and listeners.
 */
export class RedisStreamReader {
  private readonly redis: RedisConnections;
  private readonly keys: RedisKeys;
  private readonly onError: (error: unknown) => void;

  private readonly follows = new Map<string, Follow>();
  /** Remote runs to read, because a notification or a (re)subscription named them. */
  private readonly dirty = new Set<string>();
  private reading: Promise<void> | undefined;
  /** Reads of an `end` for listeners resumed past it (rare); awaited at close. */
  private readonly fetchingEnds = new Set<Promise<void>>();
  private subscribing: Promise<void> | undefined;
  /** Whether notifications reach this reader (its SUBSCRIBE was confirmed). */
  private subscribed = false;
  private started = false;
  /** Set by `stop`: notifications and reconnects start no more reads. */
  private stopped = false;
  private closed: Promise<void> | undefined;

  constructor(private readonly options: RedisStreamReaderOptions) {
    this.redis = options.redis;
    this.keys = options.keys;
    this.onError = options.onError;
  }

  /** Starts re-reading followed remote runs whenever a connection is ready again. Idempotent. */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    // Either connection coming back may mean missed work: notifications (subscriber) or
    // reads that failed with the connection (commands).
    this.redis.onReconnected(this.onReconnected);
  }

  /** Feeds `listener` the run's events after `after`; returns the function that stops it (idempotent). */
  follow(runId: string, after: EventId | null, listener: EventListener): () => void {
    let follow = this.follows.get(runId);
    const first = follow === undefined;
    if (follow === undefined) {
      follow = { listeners: new Set(), delivered: after, ended: new Set(), synced: false, cache: undefined };
      this.follows.set(runId, follow);
    }
    // A distinct wrapper per call, so the same function may follow twice and stop once each.
    const entry: EventListener = (event) => listener(event);
    follow.listeners.add(entry);
    if (first && !this.options.isWriting(runId) && !this.subscribed) this.catchUp(runId);
    if (follow.listeners.size === 2 && !this.options.isWriting(runId)) this.startCache(runId, follow);
    const current = follow;
    return () => {
      current.listeners.delete(entry);
      current.ended.delete(entry);
      if (current.listeners.size < 2) {
        // One listener has nobody to share its reads with: the cache's memory goes back.
        current.cache?.release();
        current.cache = undefined;
      }
      if (current.listeners.size === 0 && this.follows.get(runId) === current) {
        this.follows.delete(runId);
        this.dirty.delete(runId);
      }
    };
  }

  /**
   * A catch-up page (as EventStore.read) of a remote run for a listener that subscribed here
   * before it reads, from the run's cache; undefined when the cache does not hold all of it.
   * A page may end at the cache's tail, though newer events are in Redis, only when every event
   * after the tail is on its way to the listeners (the caller gets it live).
   */
  cachedPage(runId: string, after: EventId | null, limit: number, maxBytes: number): RunEvent[] | undefined {
    const follow = this.follows.get(runId);
    const cache = follow?.cache;
    if (follow === undefined || cache === undefined || this.options.isWriting(runId)) return undefined;
    const tail = cache.tail;
    const delivered = follow.delivered;
    const complete = follow.synced && (delivered === null || (tail !== null && compareEventIds(tail, delivered) >= 0));
    return cache.page(after, limit, maxBytes, complete);
  }

  /** Events of the run read from Redis (a listener's catch-up page) extend the run's cache where they follow its tail. */
  readFromRedis(runId: string, events: readonly RunEvent[]): void {
    this.follows.get(runId)?.cache?.extend(events);
  }

  /** Hands an event this instance appended to the run's listeners here, if any. */
  deliver(runId: string, event: RunEvent): void {
    const follow = this.follows.get(runId);
    if (follow !== undefined) this.deliverTo(follow, event);
  }

  /** Ignores notifications and reconnects from now on: no new read starts. Idempotent. */
  stop(): void {
    this.stopped = true;
    this.redis.offReconnected(this.onReconnected);
  }

  /** Stops, waits for the read under way, then unsubscribes (waiting up to 5 s). Idempotent. */
  close(): Promise<void> {
    this.stop();
    this.closed ??= (async () => {
      await this.reading;
      await Promise.all(this.fetchingEnds);
      for (const follow of this.follows.values()) follow.cache?.release();
      if (this.subscribing !== undefined) {
        const unsubscribed = this.redis
          .unsubscribe(this.keys.eventsChannel, this.onNotification)
          .catch((error: unknown) => this.onError(error));
        await settledWithin(unsubscribed, CLOSE_TIMEOUT_MS);
      }
      this.follows.clear();
      this.dirty.clear();
    })();
    return this.closed;
  }

  /**
   * A run followed before notifications reach this reader: once they do, read what was written
   * in between. Later follows need no read: like in-process, a listener gets what is written
   * after it subscribed, and its reader reads the rest.
   */
  private catchUp(runId: string): void {
    this.ensureSubscribed().then(
      () => this.markDirty([runId]),
      (error: unknown) => this.onError(error), // retried on the next subscription; 'ready' re-reads
    );
  }

  /**
   * The run's second listener here: from now on the listeners' reads of the run fill a cache
   * the next ones read from. A run not read to its end yet (no notification named it since it was
   * first followed) is read now, so that the cache can answer up to its newest event.
   */
  private startCache(runId: string, follow: Follow): void {
    follow.cache = new CatchUpCache(this.options.catchUpCache.limits, this.options.catchUpCache.budget);
    if (!follow.synced && this.subscribed) this.markDirty([runId]);
  }

  private ensureSubscribed(): Promise<void> {
    this.subscribing ??= this.redis.subscribe(this.keys.eventsChannel, this.onNotification).then(
      () => {
        this.subscribed = true;
      },
      (error: unknown) => {
        this.subscribing = undefined;
        throw error;
      },
    );
    return this.subscribing;
  }

  private readonly onNotification = (message: string): void => {
    if (this.stopped) return;
    const notification = parseNotification(message);
    if (notification === null) {
      this.onError(new Error('malformed events notification ignored'));
      return;
    }
    if (notification.instanceId === this.options.instanceId) return;
    const due: string[] = [];
    for (const [runId, lastId, ended] of notification.runs) {
      const follow = this.follows.get(runId);
      if (follow === undefined || this.options.isWriting(runId)) continue;
      if (follow.delivered === null || compareEventIds(lastId, follow.delivered) > 0) due.push(runId);
      else if (ended) this.fetchEnd(runId, lastId); // followed from past its end: its listeners still learn that it ended
    }
    this.markDirty(due);
  };

  /** Reads the run's `end` (its id is known) and hands it to the run's listeners, old as it is. */
  private fetchEnd(runId: string, endId: EventId): void {
    const id = formatEventId(endId);
    const fetching: Promise<void> = this.redis
      .counted(this.redis.send(this.keys.runStream(runId), ['XRANGE', this.keys.runStream(runId), id, id]))
      .then(
        (reply) => {
          const follow = this.follows.get(runId);
          if (follow === undefined) return; // unsubscribed meanwhile
          for (const event of parseStreamEntries(runId, reply, this.onError)) if (event.type === 'end') this.deliverTo(follow, event);
        },
        (error: unknown) => this.onError(error), // its listeners' idle checks look for the end again
      )
      .finally(() => this.fetchingEnds.delete(fetching));
    this.fetchingEnds.add(fetching);
  }

  /** Pub/sub delivers at most once: after a reconnect, re-read every remote run from where it is. */
  private readonly onReconnected = (): void => {
    this.markDirty([...this.follows.keys()].filter((runId) => !this.options.isWriting(runId)));
  };

  private markDirty(runIds: Iterable<string>): void {
    for (const runId of runIds) this.dirty.add(runId);
    if (this.reading !== undefined || this.dirty.size === 0 || this.stopped) return;
    this.reading = this.readLoop().then((ok) => {
      this.reading = undefined;
      // Runs marked between the loop's last check and now; after a failure, wait for a
      // notification or a reconnect instead of spinning on a connection that is down.
      if (ok) this.markDirty([]);
    });
  }

  /** One read at a time (an XREAD, or one per slot on a cluster); runs marked while it runs are read by the next one. False after a failed read. */
  private async readLoop(): Promise<boolean> {
    while (this.dirty.size > 0 && !this.stopped) {
      const runIds: string[] = [];
      for (const runId of this.dirty) {
        this.dirty.delete(runId);
        if (this.follows.has(runId) && !this.options.isWriting(runId)) runIds.push(runId);
        if (runIds.length === READ_KEYS_MAX) break;
      }
      if (runIds.length === 0) continue;
      try {
        await this.readRuns(runIds);
      } catch (error) {
        // Read again on the next notification naming them, or when a connection is back.
        for (const runId of runIds) this.dirty.add(runId);
        this.onError(error);
        return false;
      }
    }
    return true;
  }

  private async readRuns(runIds: readonly string[]): Promise<void> {
    const keys = runIds.map((runId) => this.keys.runStream(runId));
    // The follows read, as they are now: one that began while the read was under way is not synced by it.
    const readFor = new Map(runIds.map((runId) => [runId, this.follows.get(runId)]));
    const ids = runIds.map((runId) => {
      const delivered = readFor.get(runId)?.delivered ?? null;
      return delivered === null ? '0-0' : formatEventId(delivered);
    });
    const notified = this.subscribed;
    const results = await this.redis.counted(this.redis.readStreams(keys, ids, READ_COUNT));
    const runByKey = new Map(keys.map((key, index) => [key, runIds[index] as string]));
    // A shard that failed fails its own runs only: the others' events are delivered first.
    const failed = results.filter((result) => 'error' in result);
    for (const result of results) {
      if (!('reply' in result)) continue;
      const unfinished = new Set<string>();
      for (const [key, entries] of parseXReadReply(result.reply)) {
        const runId = runByKey.get(key);
        const follow = runId === undefined ? undefined : this.follows.get(runId);
        if (runId === undefined || follow === undefined) continue; // unsubscribed while reading
        for (const event of parseStreamEntries(runId, entries, this.onError)) this.deliverTo(follow, event);
        if (entries.length >= READ_COUNT) {
          this.dirty.add(runId);
          unfinished.add(runId);
        }
      }
      for (const key of notified ? result.keys : []) {
        const runId = runByKey.get(key) as string;
        const follow = readFor.get(runId);
        if (follow !== undefined && this.follows.get(runId) === follow && !unfinished.has(runId)) follow.synced = true;
      }
    }
    if (failed.length > 0) {
      const first = failed[0] as { readonly keys: readonly string[]; readonly error: unknown };
      throw new Error(`reading ${failed.length} of ${results.length} shards failed`, { cause: first.error });
    }
  }

  private deliverTo(follow: Follow, event: RunEvent): void {
    const newer = follow.delivered === null || compareEventIds(event.id, follow.delivered) > 0;
    // An `end` goes out even when it is not newer: listeners that resumed past it learn that the
    // run ended. Once to each: the read that found it and a late notification naming it may race.
    const isEnd = event.type === 'end';
    if (!newer && !isEnd) return;
    if (newer) {
      follow.delivered = event.id;
      follow.cache?.add(event);
    }
    // Live iteration: a listener removed by an earlier one gets nothing more.
    for (const listener of follow.listeners) {
      if (isEnd && follow.ended.has(listener)) continue;
      if (isEnd) follow.ended.add(listener);
      try {
        listener(event);
      } catch (error) {
        this.onError(error);
      }
    }
  }
}
