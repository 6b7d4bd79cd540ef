import { settledWithin, withDeadline } from '../../concurrency/deadline.js';
import { eventBytes, type EventId, type RunEvent } from '../../domain/index.js';
import type { RedisConnections } from './redis-connections.js';
import { appendBatch, type AppendEvent } from './redis-append-script.js';
import { formatNotification, streamEntryOf } from './redis-event-codec.js';
import type { RedisKeys } from './redis-keys.js';

export interface RedisStreamWriterOptions {
  readonly redis: RedisConnections;
  readonly keys: RedisKeys;
  /** Names this instance in notifications, so it ignores its own. */
  readonly instanceId: string;
  /** Approximate cap on entries kept per run stream (`XADD MAXLEN ~`). */
  readonly maxLen: number;
  /**
   * Approximate cap on the bytes (`eventBytes`) kept per run stream: each run's MAXLEN is this
   * over its recent event size (within maxLen). Default: no cap but maxLen.
   */
  readonly maxBytes?: number;
  /** How long a run's stream stays after its `end` (refreshed every ttlSeconds/4 while it runs). */
  readonly ttlSeconds: number;
  /** Events per flush (one Redis command) at most; default 1000. */
  readonly maxEventsPerFlush?: number;
  /** Failed writes and events left unwritten at close. */
  readonly onError: (error: unknown) => void;
}

interface Pending {
  readonly runId: string;
  readonly event: RunEvent;
  /** Position in append order, so `read` can wait for what was appended before it. */
  readonly seq: number;
}

/** A run this instance appends events of, until its `end` is written and nothing of it is left unwritten. */
interface WritingRun {
  /** Its events appended here and not yet written (or dropped), oldest first. */
  readonly unwritten: RunEvent[];
  /** Their `eventBytes`. */
  unwrittenBytes: number;
  /** Its recent events' average `eventBytes` (a moving average), for its MAXLEN. */
  averageBytes: number;
  /** Its `end` was appended. */
  ended: boolean;
  /** When its stream last got an EXPIRE that succeeded. */
  expiredAtMs: number | undefined;
}

interface Batch {
  readonly events: Pending[];
  /** Runs whose stream gets an EXPIRE in this batch: their end is in it, or their refresh is due. */
  readonly expiring: ReadonlySet<string>;
  readonly nowMs: number;
}

/** Weight of the newest event in a run's average event size (a moving average over about 8 events). */
const AVERAGE_WEIGHT = 1 / 8;
/** A flush is one script run, which Redis runs alone: about 2 µs per event, so ≈ 2 ms at most. */
const DEFAULT_MAX_EVENTS_PER_FLUSH = 1_000;
const CLOSE_TIMEOUT_MS = 5_000;
/** Under load, flushes start at least this far apart (a bound on added delivery latency). */
const MIN_FLUSH_INTERVAL_MS = 10;
/** A write Redis has not answered in this time is given up (the archive covers it). */
const COMMAND_DEADLINE_MS = 5_000;

/**
 * The writing half of the Redis event store. Writes are batched (under load, flushes start at
 * least MIN_FLUSH_INTERVAL_MS apart unless a full batch waits) and each flush is one command
 * (a script: XADD with the runtime's ids, EXPIRE when due, one PUBLISH naming each run's last
 * id). It owns which runs this instance is writing, and keeps each run's events until they are
 * written so a local reader gets them from memory.
 */
export class RedisStreamWriter {
  private readonly redis: RedisConnections;
  private readonly keys: RedisKeys;
  private readonly maxEventsPerFlush: number;
  private readonly onError: (error: unknown) => void;

  private readonly queue: Pending[] = [];
  private appendedSeq = 0;
  private writtenSeq = 0;
  private readonly writeWaiters: Array<{ seq: number; resolve: () => void }> = [];
  /**
   * The runs appended here, each with its events not yet written (or dropped), in order: a
   * reader of a run this instance writes gets them from memory, not by waiting for the write
   * and reading them back. A run is forgotten once its `end` is written and nothing is left.
   */
  private readonly runs = new Map<string, WritingRun>();
  private inFlightEvents = 0;
  private flushTimer: { cancel(): void } | undefined;
  private lastFlushAtMs = 0;
  private flushing: Promise<void> | undefined;
  private closed: Promise<void> | undefined;

  constructor(private readonly options: RedisStreamWriterOptions) {
    this.redis = options.redis;
    this.keys = options.keys;
    this.onError = options.onError;
    this.maxEventsPerFlush = Math.max(1, Math.floor(options.maxEventsPerFlush ?? DEFAULT_MAX_EVENTS_PER_FLUSH));
  }

  /**
   * Queues the event for a coming flush (one is scheduled at once); returns without waiting,
   * with the bytes of the run's events not yet written.
   */
  append(runId: string, event: RunEvent): number {
    const bytes = eventBytes(event);
    let run = this.runs.get(runId);
    if (run === undefined) {
      run = { unwritten: [], unwrittenBytes: 0, averageBytes: bytes, ended: false, expiredAtMs: undefined };
      this.runs.set(runId, run);
    }
    run.ended = event.type === 'end';
    run.unwritten.push(event);
    run.unwrittenBytes += bytes;
    run.averageBytes += (bytes - run.averageBytes) * AVERAGE_WEIGHT;
    this.appendedSeq += 1;
    this.queue.push({ runId, event, seq: this.appendedSeq });
    this.scheduleFlush();
    return run.unwrittenBytes;
  }

  /** Whether this instance is writing the run (appended, `end` not seen yet). */
  isWriting(runId: string): boolean {
    return this.runs.get(runId)?.ended === false;
  }

  /** The run's events appended here and not yet written or dropped, oldest first; undefined when none. */
  unwrittenOf(runId: string): readonly RunEvent[] | undefined {
    const unwritten = this.runs.get(runId)?.unwritten;
    return unwritten === undefined || unwritten.length === 0 ? undefined : unwritten;
  }

  /** Resolves once every event appended so far was written or dropped. */
  allWritten(): Promise<void> {
    return this.written(this.appendedSeq);
  }

  /** Events appended and not yet written (queued or in the flush under way). */
  pendingEvents(): number {
    return this.queue.length + this.inFlightEvents;
  }

  /** Writes what is pending (waiting up to 5 s), then releases readers waiting for the rest. Idempotent. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      await this.drain(Date.now() + CLOSE_TIMEOUT_MS);
      this.markWritten(this.appendedSeq); // reads waiting for events close could not write go ahead
    })();
    return this.closed;
  }

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
        const run = this.runs.get(runId);
        if (run === undefined) continue;
        run.unwritten.shift(); // batches are taken in append order: this event is the run's oldest
        run.unwrittenBytes -= eventBytes(event);
        // Written or dropped, its `end` is the last: nothing more to expire or to answer from memory.
        if (run.ended && run.unwritten.length === 0) this.runs.delete(runId);
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

  /**
   * Sends one batch as one command per shard (see redis-append-script.ts): one without a
   * cluster; on one, the shards' commands go at once and each names its own runs in its
   * notification. A shard's failure drops its part only; the first failure is thrown.
   */
  private async write({ events, expiring, nowMs }: Batch): Promise<void> {
    if (!this.redis.isReady()) throw new Error(`Redis is not connected: dropped a batch of ${events.length} events`);
    const parts = this.redis.byShard(events, ({ runId }) => this.keys.runStream(runId));
    const results = await Promise.allSettled(parts.map((part) => this.writePart(part, expiring)));
    // EXPIREs run after the XADDs in the script: they succeeded unless the script failed.
    results.forEach((result, index) => {
      if (result.status !== 'fulfilled') return;
      for (const { runId } of parts[index] ?? []) {
        const run = expiring.has(runId) ? this.runs.get(runId) : undefined;
        if (run !== undefined) run.expiredAtMs = nowMs;
      }
    });
    const failed = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
  }

  /** One shard's part of a batch as one script. */
  private async writePart(events: readonly Pending[], expiring: ReadonlySet<string>): Promise<void> {
    const lastIds = new Map<string, EventId>();
    const ended = new Set<string>();
    const maxLens = new Map<string, number>();
    const appends: AppendEvent[] = [];
    for (const { runId, event } of events) {
      const key = this.keys.runStream(runId);
      appends.push({ key, ...streamEntryOf(event) });
      if (!lastIds.has(runId)) maxLens.set(key, this.maxLenOf(runId));
      lastIds.set(runId, event.id);
      if (event.type === 'end') ended.add(runId);
    }
    const appended = appendBatch(this.redis, {
      events: appends,
      expire: [...lastIds.keys()].filter((runId) => expiring.has(runId)).map((runId) => this.keys.runStream(runId)),
      ttlSeconds: this.options.ttlSeconds,
      maxLens,
      channel: this.keys.eventsChannel,
      message: formatNotification({
        instanceId: this.options.instanceId,
        runs: [...lastIds].map(([runId, id]) => [runId, id, ended.has(runId)] as const),
      }),
    });
    // An unresponsive server (not a refused connection) would hold every later flush: give up
    // on this batch after a deadline; the archive has its events.
    await withDeadline(this.redis.counted(appended), COMMAND_DEADLINE_MS, `Redis write of ${events.length} events`);
  }

  /** The run's MAXLEN: maxLen, or fewer when its recent events are large (maxBytes over their average size). */
  private maxLenOf(runId: string): number {
    const { maxLen, maxBytes } = this.options;
    const averageBytes = this.runs.get(runId)?.averageBytes;
    if (maxBytes === undefined || averageBytes === undefined) return maxLen;
    return Math.max(1, Math.min(maxLen, Math.floor(maxBytes / averageBytes)));
  }

  /** A run's first write, or ttlSeconds/4 since its last EXPIRE: so a dead writer's stream still expires. */
  private expireDue(runId: string, nowMs: number): boolean {
    const last = this.runs.get(runId)?.expiredAtMs;
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
}
