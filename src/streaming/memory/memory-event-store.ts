import { BackgroundLoop } from '../../concurrency/background-loop.js';
import { compareEventIds, eventBytes, type EventId, type RunEvent } from '../../domain/index.js';
import { BoundedCache } from '../../lib/bounded-cache.js';
import type { EventListener, EventStore, EventStoreStats } from '../event-store.js';

/** One run's newest events (`events[start..]`, oldest first) and its listeners here. */
interface RunStream {
  events: Array<RunEvent | undefined>;
  /** Index of the oldest event kept: trimmed ones are cleared and skipped, then compacted away. */
  start: number;
  /** `eventBytes` of the events kept. */
  bytes: number;
  /** Its `end` was appended: its bytes count among the ended runs'. */
  ended: boolean;
  readonly listeners: Set<EventListener>;
}

export interface MemoryEventStoreOptions {
  /** How long a run's events stay after its `end` event. */
  readonly ttlSeconds: number;
  /** Most events kept per run (STREAM_MAXLEN); default 10000. */
  readonly maxLen?: number;
  /** Most bytes of events (`eventBytes`) kept per run (STREAM_MAX_BYTES); default 8 MiB. The newest event always stays. */
  readonly maxBytes?: number;
  /** Most ended runs kept at once (the oldest go first); default 10000. */
  readonly maxEndedRuns?: number;
  /** Most bytes the ended runs keep, all together (STREAM_MEMORY_MAX_BYTES; the oldest go first); default 64 MiB. */
  readonly maxEndedBytes?: number;
  readonly onError: (error: unknown) => void;
}

const DEFAULT_MAX_LEN = 10_000;
const DEFAULT_MAX_BYTES = 8 * 1024 * 1024;
const DEFAULT_MAX_ENDED_RUNS = 10_000;
const DEFAULT_MAX_ENDED_BYTES = 64 * 1024 * 1024;
/** Trimmed slots are compacted away once there are this many and they are half the array. */
const COMPACT_AFTER = 1_024;

/**
 * The in-process event store for a single instance without Redis: same ids and semantics
 * as the Redis store. Each run keeps its newest events, at most `maxLen` of them and `maxBytes`
 * (like the Redis stream's trimming); an ended run's are dropped `ttlSeconds` after its end, or
 * earlier when more than `maxEndedRuns` ended runs, or more than `maxEndedBytes`, are held (the
 * oldest first): memory stays bounded under large runs and under a burst of short ones. Readers
 * get what was dropped from the archive. `start()` starts the sweeper that drops expired runs.
 */
export class MemoryEventStore implements EventStore {
  private readonly streams = new Map<string, RunStream>();
  /** Ended runs in the order they ended (with when); evicting one drops its events. */
  private readonly ended: BoundedCache<string, number>;
  /** Bytes the ended runs keep. */
  private endedBytes = 0;
  private readonly maxLen: number;
  private readonly maxBytes: number;
  private readonly maxEndedBytes: number;
  private readonly sweeper: BackgroundLoop;
  private closed: Promise<void> | undefined;

  constructor(private readonly options: MemoryEventStoreOptions) {
    this.maxLen = options.maxLen ?? DEFAULT_MAX_LEN;
    this.maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
    this.maxEndedBytes = options.maxEndedBytes ?? DEFAULT_MAX_ENDED_BYTES;
    this.ended = new BoundedCache({
      maxEntries: options.maxEndedRuns ?? DEFAULT_MAX_ENDED_RUNS,
      ttlMs: options.ttlSeconds * 1000,
      onEvict: (runId) => this.drop(runId),
    });
    this.sweeper = new BackgroundLoop(
      () => this.expire(Date.now()),
      Math.min(60_000, Math.max(1_000, (options.ttlSeconds * 1000) / 4)),
      options.onError,
    );
  }

  /** Starts the sweeper. Idempotent; a closed store stays stopped. */
  start(): void {
    this.sweeper.start();
  }

  /** Keeps the event (trimming the run's oldest past the bounds) and feeds the listeners; written at once, so 0. */
  append(runId: string, event: RunEvent): number {
    const stream = this.streamOf(runId);
    const bytesBefore = stream.bytes;
    stream.events.push(event);
    stream.bytes += eventBytes(event);
    if (stream.events.length - stream.start > this.maxLen || stream.bytes > this.maxBytes) trim(stream, this.maxLen, this.maxBytes);
    if (stream.ended)
      this.endedBytes += stream.bytes - bytesBefore; // an event after the `end` (not the runtime's way)
    else if (event.type === 'end') this.endRun(runId, stream);
    for (const listener of stream.listeners) {
      try {
        listener(event);
      } catch (error) {
        this.options.onError(error); // a listener's failure is its own; the others still get the event
      }
    }
    return 0;
  }

  async appendEnd(runId: string, json: string, notBefore: EventId, prevIfEmpty: EventId | null): Promise<RunEvent> {
    const last = this.streams.get(runId)?.events.at(-1); // trimmed positions are cleared: undefined when nothing is kept
    if (last?.type === 'end') return last;
    const prev = last?.id ?? prevIfEmpty;
    const id = prev === null || compareEventIds(notBefore, prev) > 0 ? notBefore : { ms: prev.ms, seq: prev.seq + 1 };
    const end: RunEvent = { id, prev, type: 'end', json };
    this.append(runId, end);
    return end;
  }

  async read(runId: string, after: EventId | null, limit: number, maxBytes = Number.MAX_SAFE_INTEGER): Promise<RunEvent[]> {
    const stream = this.streams.get(runId);
    if (stream === undefined) return [];
    const { events } = stream;
    const from = after === null ? stream.start : firstAfter(events, stream.start, after);
    const end = Math.min(events.length, from + Math.max(0, limit));
    // Events up to the one that reaches maxBytes (so a page that stopped for bytes has reached it).
    let bytes = 0;
    let to = from;
    while (to < end && bytes < maxBytes) bytes += eventBytes(events[to++] as RunEvent);
    return events.slice(from, to) as RunEvent[];
  }

  subscribe(runId: string, _after: EventId | null, listener: EventListener): () => void {
    const followed = this.streamOf(runId);
    // A distinct wrapper per call, so the same function may follow twice and stop once each.
    const entry: EventListener = (event) => listener(event);
    followed.listeners.add(entry);
    return () => {
      followed.listeners.delete(entry);
      // A follow of a run this instance holds nothing of (finished long ago) leaves nothing behind.
      if (followed.listeners.size === 0 && followed.events.length === followed.start && this.streams.get(runId) === followed) {
        this.streams.delete(runId);
      }
    };
  }

  /** Written at once: nothing to wait for. */
  async written(): Promise<void> {}

  stats(): EventStoreStats {
    return { connections: 0, inFlightOps: 0, pendingEvents: 0, reconnectAttempts: 0, reconnects: 0 };
  }

  async ping(): Promise<void> {
    if (this.closed !== undefined) throw new Error('event store is closed');
  }

  /** Drops streams that ended more than the TTL ago. */
  expire(nowMs: number): void {
    this.ended.evictExpired(nowMs);
  }

  /** Runs with events held now (for tests and the capacity view). */
  get size(): number {
    return this.streams.size;
  }

  /** Bytes the ended runs keep now (STREAM_MEMORY_MAX_BYTES bounds it). */
  get endedRunsBytes(): number {
    return this.endedBytes;
  }

  close(): Promise<void> {
    this.closed ??= this.sweeper.stop();
    return this.closed;
  }

  private streamOf(runId: string): RunStream {
    let stream = this.streams.get(runId);
    if (stream === undefined) {
      stream = { events: [], start: 0, bytes: 0, ended: false, listeners: new Set() };
      this.streams.set(runId, stream);
    }
    return stream;
  }

  /** Counts the run among the ended ones; past maxEndedBytes, the runs that ended first are dropped (never this one). */
  private endRun(runId: string, stream: RunStream): void {
    stream.ended = true;
    this.ended.set(runId, Date.now());
    this.endedBytes += stream.bytes;
    if (this.endedBytes <= this.maxEndedBytes) return;
    for (const [oldest] of this.ended.entries()) {
      if (this.endedBytes <= this.maxEndedBytes || oldest === runId) break;
      this.ended.delete(oldest);
      this.drop(oldest);
    }
  }

  /** Forgets an ended run's events; its listeners (if any) stay and read the archive. */
  private drop(runId: string): void {
    const stream = this.streams.get(runId);
    if (stream === undefined) return;
    if (stream.ended) this.endedBytes -= stream.bytes;
    if (stream.listeners.size === 0) {
      this.streams.delete(runId);
      return;
    }
    stream.events = [];
    stream.start = 0;
    stream.bytes = 0;
    stream.ended = false;
  }
}

/** Drops the stream's oldest events until it is within both bounds, keeping at least the newest. */
function trim(stream: RunStream, maxLen: number, maxBytes: number): void {
  const { events } = stream;
  while (events.length - stream.start > 1 && (events.length - stream.start > maxLen || stream.bytes > maxBytes)) {
    stream.bytes -= eventBytes(events[stream.start] as RunEvent);
    events[stream.start] = undefined;
    stream.start += 1;
  }
  if (stream.start >= COMPACT_AFTER && stream.start * 2 >= events.length) {
    events.splice(0, stream.start);
    stream.start = 0;
  }
}

/** Index of the first event from `start` whose id is greater than `after` (binary search: ids increase). */
function firstAfter(events: ReadonlyArray<RunEvent | undefined>, start: number, after: EventId): number {
  let lo = start;
  let hi = events.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareEventIds((events[mid] as RunEvent).id, after) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
