import { withDeadline } from '../../concurrency/deadline.js';
import { compareEventIds, type EventId, formatEventId, type RunEvent } from '../../domain/index.js';
import type { EventListener, EventStore, EventStoreStats } from '../event-store.js';
import type { RedisConnections } from './redis-connections.js';
import { appendBatch, type AppendEvent } from './redis-append-script.js';
import { formatNotification, parseNotification, parseStreamEntry, parseXReadReply, streamEntryOf } from './redis-event-codec.js';
import type { RedisKeys } from './redis-keys.js';

export interface RedisEventStoreOptions {
  readonly redis: RedisConnections;
  readonly keys: RedisKeys;
  /** Names this instance in notifications, so it ignores its own. */
  readonly instanceId: string;
  /** Approximate cap on entries kept per run stream (`XADD MAXLEN ~`). */
  readonly maxLen: number;
  /** How long a run's stream stays after its `end` (refreshed every ttlSeconds/4 while it runs). */
  readonly ttlSeconds: number;
  /** Events per flush (one Redis command) at most; default 1000. */
  readonly maxEventsPerFlush?: number;
  /** Failed writes and reads, malformed entries, listener exceptions. */
  readonly onError: (error: unknown) => void;
}

interface Pending {
  readonly runId: string;
  readonly event: RunEvent;
  /** Position in append order, so `read` can wait for what was appended before it. */
  readonly seq: number;
}

interface Batch {
  readonly events: Pending[];
  /** Runs whose stream gets an EXPIRE in this batch: their end is in it, or their refresh is due. */
  readonly expiring: ReadonlySet<string>;
  readonly nowMs: number;
}

/** The listeners of one run on this instance. */
interface Follow {
  readonly listeners: Set<EventListener>;
  /** Highest id handed to the listeners; nothing at or below it is delivered again. */
  delivered: EventId | null;
}

/** A flush is one script run, which Redis runs alone: about 2 µs per event, so ≈ 2 ms at most. */
const DEFAULT_MAX_EVENTS_PER_FLUSH = 1_000;
/** XREAD COUNT: entries per run per read; a run that fills it is read again. */
const READ_COUNT = 1_000;
/** Streams named in one XREAD (Redis pays per key per call). */
const READ_KEYS_MAX = 1_000;
const CLOSE_TIMEOUT_MS = 5_000;
/** Under load, flushes start at least this far apart (a bound on added delivery latency). */
const MIN_FLUSH_INTERVAL_MS = 10;
/** A write or read Redis has not answered in this time is given up (the archive covers it). */
const COMMAND_DEADLINE_MS = 5_000;

/**
 * The event store shared by several instances. Writes are batched (under load, flushes start
 * at least MIN_FLUSH_INTERVAL_MS apart unless a full batch waits) and each flush is one command
 * (a script: XADD with the runtime's ids, EXPIRE when due, one PUBLISH naming each run's last id).
 * Listeners of runs this instance writes are fed in-process; listeners of other runs are fed
 * by batched, non-blocking XREADs when another instance's notification names their run. Uses
 * only the two connections it is given, whatever the number of runs and listeners.
 */
export class RedisEventStore implements EventStore {
  private readonly redis: RedisConnections;
  private readonly keys: RedisKeys;
  private readonly maxEventsPerFlush: number;
  private readonly onError: (error: unknown) => void;

  private readonly queue: Pending[] = [];
  private appendedSeq = 0;
  private writtenSeq = 0;
  private readonly writeWaiters: Array<{ seq: number; resolve: () => void }> = [];
  /**
   * Events appended here and not yet written (or dropped), per run, in order: a reader of a
   * run this instance writes gets them from memory, not by waiting for the write and reading
   * them back.
   */
  private readonly unwritten = new Map<string, RunEvent[]>();
  private inFlightEvents = 0;
  private flushTimer: { cancel(): void } | undefined;
  private lastFlushAtMs = 0;
  private flushing: Promise<void> | undefined;

  /** Runs this instance is writing: appended, `end` not seen. Their listeners are fed in-process. */
  private readonly writing = new Set<string>();
  /** When each run being written last got an EXPIRE that succeeded. */
  private readonly expiredAtMs = new Map<string, number>();

  private readonly follows = new Map<string, Follow>();
  /** Remote runs to read, because a notification or a (re)subscription named them. */
  private readonly dirty = new Set<string>();
  private reading: Promise<void> | undefined;
  private subscribing: Promise<void> | undefined;
  /** Whether notifications reach this store (its SUBSCRIBE was confirmed). */
  private subscribed = false;
  private closed: Promise<void> | undefined;

  constructor(private readonly options: RedisEventStoreOptions) {
    this.redis = options.redis;
    this.keys = options.keys;
    this.onError = options.onError;
    this.maxEventsPerFlush = Math.max(1, Math.floor(options.maxEventsPerFlush ?? DEFAULT_MAX_EVENTS_PER_FLUSH));
    // Either connection coming back may mean missed work: notifications (subscriber) or
    // reads that failed with the connection (commands).
    this.redis.subscriber.on('ready', this.onReconnected);
    this.redis.commands.on('ready', this.onReconnected);
  }

  append(runId: string, event: RunEvent): void {
    if (this.closed !== undefined) {
      this.onError(new Error(`event store is closed; event ${formatEventId(event.id)} of run ${runId} not stored`));
      return;
    }
    if (event.type === 'end') this.writing.delete(runId);
    else this.writing.add(runId);
    const follow = this.follows.get(runId);
    if (follow !== undefined) this.deliver(follow, event);
    this.appendedSeq += 1;
    this.queue.push({ runId, event, seq: this.appendedSeq });
    const unwritten = this.unwritten.get(runId);
    if (unwritten === undefined) this.unwritten.set(runId, [event]);
    else unwritten.push(event);
    this.scheduleFlush();
  }

  /**
   * Reads the run's stream. On the writing instance, events not written yet are answered from
   * memory when they are all the reader lacks; otherwise the read waits for them to be written.
   */
  async read(runId: string, after: EventId | null, limit: number): Promise<RunEvent[]> {
    if (limit <= 0) return [];
    const unwritten = this.unwritten.get(runId);
    if (unwritten !== undefined) {
      const first = unwritten[0] as RunEvent;
      // Nothing newer than `after` lies before the first unwritten event: they are the answer.
      if (first.prev === null || (after !== null && compareEventIds(first.prev, after) <= 0)) {
        return unwritten.filter((event) => after === null || compareEventIds(event.id, after) > 0).slice(0, limit);
      }
      await withDeadline(this.written(this.appendedSeq), COMMAND_DEADLINE_MS, 'Redis write');
    }
    const start = after === null ? '-' : `(${formatEventId(after)}`;
    const reply = await withDeadline(
      this.redis.track(this.redis.commands.sendCommand<unknown>(['XRANGE', this.keys.runStream(runId), start, '+', 'COUNT', String(limit)])),
      COMMAND_DEADLINE_MS,
      'Redis XRANGE',
    );
    return this.toEvents(runId, reply);
  }

  subscribe(runId: string, after: EventId | null, listener: EventListener): () => void {
    let follow = this.follows.get(runId);
    const first = follow === undefined;
    if (follow === undefined) {
      follow = { listeners: new Set(), delivered: after };
      this.follows.set(runId, follow);
    }
    // A distinct wrapper per call, so the same function may follow twice and stop once each.
    const entry: EventListener = (event) => listener(event);
    follow.listeners.add(entry);
    if (first && !this.writing.has(runId) && !this.subscribed) this.catchUp(runId);
    const current = follow;
    return () => {
      current.listeners.delete(entry);
      if (current.listeners.size === 0 && this.follows.get(runId) === current) {
        this.follows.delete(runId);
        this.dirty.delete(runId);
      }
    };
  }

  async ping(): Promise<void> {
    if (this.closed !== undefined) throw new Error('event store is closed');
    await this.redis.ping();
  }

  stats(): EventStoreStats {
    return {
      connections: this.redis.connectionCount(),
      inFlightOps: this.redis.inFlight(),
      pendingEvents: this.queue.length + this.inFlightEvents,
    };
  }

  /** Writes what is pending (waiting up to 5 s), then stops reading. Leaves the connections open. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      this.redis.subscriber.off('ready', this.onReconnected);
      this.redis.commands.off('ready', this.onReconnected);
      await this.drain(Date.now() + CLOSE_TIMEOUT_MS);
      await this.reading;
      if (this.subscribing !== undefined) {
        const unsubscribed = this.redis.subscriber
          .unsubscribe(this.keys.eventsChannel, this.onNotification)
          .catch((error: unknown) => this.onError(error));
        await settledWithin(unsubscribed, CLOSE_TIMEOUT_MS);
      }
      this.follows.clear();
      this.dirty.clear();
      this.markWritten(this.appendedSeq); // reads waiting for events close could not write go ahead
    })();
    return this.closed;
  }

  // --- writing ---

  private scheduleFlush(): void {
    if (this.flushTimer !== undefined || this.flushing !== undefined) return; // the running flush reschedules
    const run = () => {
      this.flushTimer = undefined;
      this.startFlush();
    };
    // The first event after a quiet spell goes out in the next tick; under load flushes are
    // at least MIN_FLUSH_INTERVAL_MS apart, so each carries many events and the PUBLISH and
    // the readers' XREAD are paid per batch, not per event.
    // A full batch waiting goes at once: the interval batches a trickle, it must not cap throughput.
    const full = this.queue.length >= this.maxEventsPerFlush;
    const waitMs = full ? 0 : this.lastFlushAtMs + MIN_FLUSH_INTERVAL_MS - Date.now();
    if (waitMs <= 0) {
      const immediate = setImmediate(run);
      this.flushTimer = { cancel: () => clearImmediate(immediate) };
    } else {
      const timeout = setTimeout(run, waitMs);
      this.flushTimer = { cancel: () => clearTimeout(timeout) };
    }
  }

  private startFlush(): void {
    if (this.flushing !== undefined || this.queue.length === 0) return;
    this.flushing = this.flush().finally(() => {
      this.flushing = undefined;
      if (this.queue.length > 0 && this.closed === undefined) this.scheduleFlush();
    });
  }

  private async flush(): Promise<void> {
    this.lastFlushAtMs = Date.now();
    const batch = this.takeBatch(this.lastFlushAtMs);
    this.inFlightEvents = batch.events.length;
    try {
      await this.write(batch);
    } catch (error) {
      // The batch is dropped: the archive keeps every event and readers see the hole via `prev`.
      this.onError(error);
    } finally {
      this.inFlightEvents = 0;
      for (const { runId, event } of batch.events) {
        if (event.type === 'end') this.expiredAtMs.delete(runId); // written or dropped, it is the last
        const unwritten = this.unwritten.get(runId);
        unwritten?.shift(); // batches are taken in append order: this event is the run's oldest
        if (unwritten?.length === 0) this.unwritten.delete(runId);
      }
      this.markWritten(batch.events.at(-1)?.seq ?? this.writtenSeq);
    }
  }

  /** The next events to write (at most maxEventsPerFlush), and which of their streams get an EXPIRE. */
  private takeBatch(nowMs: number): Batch {
    const events = this.queue.splice(0, this.maxEventsPerFlush);
    const expiring = new Set<string>();
    const runs = new Set<string>();
    for (const { runId, event } of events) {
      if (event.type === 'end' || (!runs.has(runId) && this.expireDue(runId, nowMs))) expiring.add(runId);
      runs.add(runId);
    }
    return { events, expiring, nowMs };
  }

  /** Sends one batch as one command (see redis-append-script.ts). */
  private async write({ events, expiring, nowMs }: Batch): Promise<void> {
    const client = this.redis.commands;
    if (!client.isReady) throw new Error(`Redis is not connected: dropped a batch of ${events.length} events`);
    const lastIds = new Map<string, EventId>();
    const appends: AppendEvent[] = [];
    for (const { runId, event } of events) {
      appends.push({ key: this.keys.runStream(runId), ...streamEntryOf(event) });
      lastIds.set(runId, event.id);
    }
    const appended = appendBatch(client, {
      events: appends,
      expire: [...expiring].map((runId) => this.keys.runStream(runId)),
      ttlSeconds: this.options.ttlSeconds,
      maxLen: this.options.maxLen,
      channel: this.keys.eventsChannel,
      message: formatNotification({ instanceId: this.options.instanceId, runs: [...lastIds] }),
    });
    // An unresponsive server (not a refused connection) would hold every later flush: give up
    // on this batch after a deadline; the archive has its events.
    await withDeadline(this.redis.track(appended), COMMAND_DEADLINE_MS, `Redis write of ${events.length} events`);
    // EXPIREs run after the XADDs in the script: they succeeded unless the script failed.
    for (const runId of expiring) this.expiredAtMs.set(runId, nowMs);
  }

  /** A run's first write, or ttlSeconds/4 since its last EXPIRE: so a dead writer's stream still expires. */
  private expireDue(runId: string, nowMs: number): boolean {
    const last = this.expiredAtMs.get(runId);
    return last === undefined || nowMs - last >= (this.options.ttlSeconds * 1000) / 4;
  }

  private markWritten(seq: number): void {
    this.writtenSeq = Math.max(this.writtenSeq, seq);
    for (let i = this.writeWaiters.length - 1; i >= 0; i--) {
      const waiter = this.writeWaiters[i] as { seq: number; resolve: () => void };
      if (waiter.seq <= this.writtenSeq) {
        this.writeWaiters.splice(i, 1);
        waiter.resolve();
      }
    }
  }

  /** Resolves once every event up to `seq` was written or dropped. */
  private written(seq: number): Promise<void> {
    if (this.writtenSeq >= seq) return Promise.resolve();
    return new Promise((resolve) => this.writeWaiters.push({ seq, resolve }));
  }

  /** Flushes until nothing is pending or the deadline passes (then reports what it leaves). */
  private async drain(deadlineMs: number): Promise<void> {
    this.flushTimer?.cancel();
    this.flushTimer = undefined;
    while (this.queue.length > 0 || this.flushing !== undefined) {
      this.startFlush();
      const left = deadlineMs - Date.now();
      if (left <= 0 || !(await settledWithin(this.flushing ?? Promise.resolve(), left))) {
        this.onError(new Error(`event store closed with ${this.queue.length + this.inFlightEvents} events not written`));
        return;
      }
    }
  }

  // --- following other instances' runs ---

  /**
   * A run followed before notifications reach this store: once they do, read what was written
   * in between. Later follows need no read: like in-process, a listener gets what is written
   * after it subscribed, and its reader reads the rest.
   */
  private catchUp(runId: string): void {
    this.ensureSubscribed().then(
      () => this.markDirty([runId]),
      (error: unknown) => this.onError(error), // retried on the next subscription; 'ready' re-reads
    );
  }

  private ensureSubscribed(): Promise<void> {
    this.subscribing ??= this.redis.subscriber.subscribe(this.keys.eventsChannel, this.onNotification).then(
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
    if (this.closed !== undefined) return;
    const notification = parseNotification(message);
    if (notification === null) {
      this.onError(new Error('malformed events notification ignored'));
      return;
    }
    if (notification.instanceId === this.options.instanceId) return;
    const due: string[] = [];
    for (const [runId, lastId] of notification.runs) {
      const follow = this.follows.get(runId);
      if (follow === undefined || this.writing.has(runId)) continue;
      if (follow.delivered === null || compareEventIds(lastId, follow.delivered) > 0) due.push(runId);
    }
    this.markDirty(due);
  };

  /** Pub/sub delivers at most once: after a reconnect, re-read every remote run from where it is. */
  private readonly onReconnected = (): void => {
    this.markDirty([...this.follows.keys()].filter((runId) => !this.writing.has(runId)));
  };

  private markDirty(runIds: Iterable<string>): void {
    for (const runId of runIds) this.dirty.add(runId);
    if (this.reading !== undefined || this.dirty.size === 0 || this.closed !== undefined) return;
    this.reading = this.readLoop().then((ok) => {
      this.reading = undefined;
      // Runs marked between the loop's last check and now; after a failure, wait for a
      // notification or a reconnect instead of spinning on a connection that is down.
      if (ok) this.markDirty([]);
    });
  }

  /** One XREAD at a time; runs marked while it runs are read by the next one. False after a failed read. */
  private async readLoop(): Promise<boolean> {
    while (this.dirty.size > 0 && this.closed === undefined) {
      const runIds: string[] = [];
      for (const runId of this.dirty) {
        this.dirty.delete(runId);
        if (this.follows.has(runId) && !this.writing.has(runId)) runIds.push(runId);
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
    const ids = runIds.map((runId) => {
      const delivered = this.follows.get(runId)?.delivered ?? null;
      return delivered === null ? '0-0' : formatEventId(delivered);
    });
    const reply = await this.redis.track(
      this.redis.commands.sendCommand<unknown>(['XREAD', 'COUNT', String(READ_COUNT), 'STREAMS', ...keys, ...ids]),
    );
    const runByKey = new Map(keys.map((key, index) => [key, runIds[index] as string]));
    for (const [key, entries] of parseXReadReply(reply)) {
      const runId = runByKey.get(key);
      const follow = runId === undefined ? undefined : this.follows.get(runId);
      if (runId === undefined || follow === undefined) continue; // unsubscribed while reading
      for (const event of this.toEvents(runId, entries)) this.deliver(follow, event);
      if (entries.length >= READ_COUNT) this.dirty.add(runId);
    }
  }

  private deliver(follow: Follow, event: RunEvent): void {
    if (follow.delivered !== null && compareEventIds(event.id, follow.delivered) <= 0) return;
    follow.delivered = event.id;
    // Live iteration: a listener removed by an earlier one gets nothing more.
    for (const listener of follow.listeners) {
      try {
        listener(event);
      } catch (error) {
        this.onError(error);
      }
    }
  }

  /** Stream entries (XRANGE/XREAD shape) to events; malformed entries are reported and skipped. */
  private toEvents(runId: string, reply: unknown): RunEvent[] {
    const events: RunEvent[] = [];
    if (!Array.isArray(reply)) return events;
    for (const entry of reply) {
      const event = parseStreamEntry(entry);
      if (event === null) this.onError(new Error(`malformed stream entry of run ${runId} skipped`));
      else events.push(event);
    }
    return events;
  }
}

/** True if `promise` settled within `ms`. */
async function settledWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}
