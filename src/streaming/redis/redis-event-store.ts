import { withDeadline } from '../../concurrency/deadline.js';
import { compareEventIds, type EventId, formatEventId, type RunEvent } from '../../domain/index.js';
import { ByteBudget } from '../../lib/byte-budget.js';
import { type EventListener, type EventStore, type EventStoreStats, pageOfBytes, type ReadOptions } from '../event-store.js';
import { CATCH_UP_CACHE_LIMITS, CATCH_UP_CACHE_TOTAL_BYTES } from './catch-up-cache.js';
import { parseStreamEntries } from './redis-event-codec.js';
import { sealStream } from './redis-seal-script.js';
import { RedisStreamReader } from './redis-stream-reader.js';
import { RedisStreamWriter, type RedisStreamWriterOptions } from './redis-stream-writer.js';

export interface RedisEventStoreOptions extends RedisStreamWriterOptions {
  /** Failed writes and reads, malformed entries, listener exceptions. */
  readonly onError: (error: unknown) => void;
  /** What the catch-up caches of remote runs hold at most, in all, in `eventBytes` (default CATCH_UP_CACHE_TOTAL_BYTES). */
  readonly catchUpCacheBytes?: number;
}

/** A read Redis has not answered in this time is given up (the archive covers it). */
const COMMAND_DEADLINE_MS = 5_000;

/**
 * The event store shared by several instances: a batched writer (redis-stream-writer.ts) and a
 * reader that follows other instances' runs (redis-stream-reader.ts) over the instance's two
 * connections. Listeners of runs this instance writes are fed in-process as events are appended.
 */
export class RedisEventStore implements EventStore {
  private readonly writer: RedisStreamWriter;
  private readonly reader: RedisStreamReader;
  private readonly catchUpBudget: ByteBudget;
  /** Followers' XRANGEs under way, by run, start and count (sharedRange). */
  private readonly rangesUnderWay = new Map<string, Promise<RunEvent[]>>();
  private closed: Promise<void> | undefined;

  constructor(private readonly options: RedisEventStoreOptions) {
    this.writer = new RedisStreamWriter(options);
    this.catchUpBudget = new ByteBudget(options.catchUpCacheBytes ?? CATCH_UP_CACHE_TOTAL_BYTES);
    this.reader = new RedisStreamReader({
      redis: options.redis,
      keys: options.keys,
      instanceId: options.instanceId,
      isWriting: (runId) => this.writer.isWriting(runId),
      onError: options.onError,
      catchUpCache: { limits: CATCH_UP_CACHE_LIMITS, budget: this.catchUpBudget },
    });
  }

  /** Bytes (`eventBytes`) the catch-up caches of remote runs hold now, within `catchUpCacheBytes`. */
  get catchUpCacheBytes(): number {
    return this.catchUpBudget.used;
  }

  /** Starts recovering from reconnects (re-reading followed remote runs). Idempotent. */
  start(): void {
    this.reader.start();
  }

  append(runId: string, event: RunEvent): number {
    if (this.closed !== undefined) {
      this.options.onError(new Error(`event store is closed; event ${formatEventId(event.id)} of run ${runId} not stored`));
      return 0;
    }
    const unwrittenBytes = this.writer.append(runId, event);
    this.reader.deliver(runId, event);
    return unwrittenBytes;
  }

  async appendEnd(runId: string, json: string, notBefore: EventId, prevIfEmpty: EventId | null): Promise<RunEvent> {
    const { redis, keys } = this.options;
    const sealing = sealStream(redis, {
      key: keys.runStream(runId),
      runId,
      json,
      notBefore,
      prevIfEmpty,
      ttlSeconds: this.options.ttlSeconds,
      channel: keys.eventsChannel,
      instanceId: this.options.instanceId,
    });
    const end = await withDeadline(redis.counted(sealing), COMMAND_DEADLINE_MS, 'Redis end of a run');
    // This instance ignores its own notifications: its listeners of the run get the end here.
    this.reader.deliver(runId, end);
    return end;
  }

  /**
   * Reads the run's stream (XRANGE COUNT `limit`: a caller reading large events asks for few).
   * On the writing instance, events not written yet are answered from memory when they are all
   * the reader lacks; otherwise the read waits for them to be written. A follower of a remote
   * run that other listeners here follow too is answered from the run's catch-up cache when it
   * holds the page; what is read from Redis fills that cache for the next ones.
   */
  async read(
    runId: string,
    after: EventId | null,
    limit: number,
    maxBytes = Number.MAX_SAFE_INTEGER,
    options: ReadOptions = {},
  ): Promise<RunEvent[]> {
    if (limit <= 0) return [];
    if (options.following === true) {
      const cached = this.reader.cachedPage(runId, after, limit, maxBytes);
      if (cached !== undefined) return cached;
    }
    const unwritten = this.writer.unwrittenOf(runId);
    if (unwritten !== undefined) {
      const first = unwritten[0] as RunEvent;
      // Nothing newer than `after` lies before the first unwritten event: they are the answer.
      if (first.prev === null || (after !== null && compareEventIds(first.prev, after) <= 0)) {
        const newer = unwritten.filter((event) => after === null || compareEventIds(event.id, after) > 0);
        return pageOfBytes(newer.slice(0, limit), maxBytes);
      }
      await withDeadline(this.writer.allWritten(), COMMAND_DEADLINE_MS, 'Redis write');
    }
    const events = await (options.following === true ? this.sharedRange(runId, after, limit) : this.range(runId, after, limit));
    return pageOfBytes(events, maxBytes);
  }

  /**
   * A follower's XRANGE, shared with the followers here asking for the same page while it is
   * under way (listeners arriving together ask for the same first pages). Its answer may predate
   * a follower's subscription: the follower's chain check reads again what it misses.
   */
  private sharedRange(runId: string, after: EventId | null, limit: number): Promise<RunEvent[]> {
    const key = `${runId} ${after === null ? '-' : formatEventId(after)} ${limit}`;
    let reading = this.rangesUnderWay.get(key);
    if (reading === undefined) {
      reading = this.range(runId, after, limit).finally(() => this.rangesUnderWay.delete(key));
      this.rangesUnderWay.set(key, reading);
    }
    return reading;
  }

  /** XRANGE of the run's events after `after`, at most `limit`; they fill the run's catch-up cache where they continue it. */
  private async range(runId: string, after: EventId | null, limit: number): Promise<RunEvent[]> {
    const { redis, keys } = this.options;
    const start = after === null ? '-' : `(${formatEventId(after)}`;
    const key = keys.runStream(runId);
    const reply = await withDeadline(
      redis.counted(redis.send(key, ['XRANGE', key, start, '+', 'COUNT', String(limit)])),
      COMMAND_DEADLINE_MS,
      'Redis XRANGE',
    );
    const events = parseStreamEntries(runId, reply, this.options.onError);
    this.reader.readFromRedis(runId, events);
    return events;
  }

  /** Resolves once every event appended so far was written or dropped (failed writes are dropped: the archive keeps them). */
  written(): Promise<void> {
    return this.writer.allWritten();
  }

  subscribe(runId: string, after: EventId | null, listener: EventListener): () => void {
    return this.reader.follow(runId, after, listener);
  }

  async ping(): Promise<void> {
    if (this.closed !== undefined) throw new Error('event store is closed');
    await this.options.redis.ping();
  }

  stats(): EventStoreStats {
    const { redis } = this.options;
    const reconnects = redis.reconnects();
    return {
      connections: redis.connectionCount(),
      inFlightOps: redis.inFlight(),
      pendingEvents: this.writer.pendingEvents(),
      reconnectAttempts: reconnects.attempts,
      reconnects: reconnects.ready,
    };
  }

  /** Writes what is pending (waiting up to 5 s), then stops reading. Leaves the connections open. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      this.reader.stop();
      await this.writer.close();
      await this.reader.close();
    })();
    return this.closed;
  }
}
