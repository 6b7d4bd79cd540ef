import { BackgroundLoop } from '../../concurrency/background-loop.js';
import { compareEventIds, type EventId, type RunEvent } from '../../domain/index.js';
import { BoundedCache } from '../../lib/bounded-cache.js';
import type { EventListener, EventStore, EventStoreStats } from '../event-store.js';

interface RunStream {
  readonly events: RunEvent[];
  readonly listeners: Set<EventListener>;
}

export interface MemoryEventStoreOptions {
  /** How long a run's events stay after its `end` event. */
  readonly ttlSeconds: number;
  /** Most ended runs kept at once (the oldest go first); default 10000. */
  readonly maxEndedRuns?: number;
  readonly onError: (error: unknown) => void;
}

const DEFAULT_MAX_ENDED_RUNS = 10_000;

/**
 * The in-process event store for a single instance without Redis: same ids and semantics
 * as the Redis store. A run's events are dropped `ttlSeconds` after its end, or earlier when
 * more than `maxEndedRuns` ended runs are held (memory stays bounded under a burst of short
 * runs); readers then get them from the archive. `start()` starts the sweeper that drops
 * expired runs.
 */
export class MemoryEventStore implements EventStore {
  private readonly streams = new Map<string, RunStream>();
  /** Ended runs in the order they ended (with when); evicting one drops its events. */
  private readonly ended: BoundedCache<string, number>;
  private readonly sweeper: BackgroundLoop;
  private closed: Promise<void> | undefined;

  constructor(private readonly options: MemoryEventStoreOptions) {
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

  append(runId: string, event: RunEvent): void {
    let stream = this.streams.get(runId);
    if (stream === undefined) {
      stream = { events: [], listeners: new Set() };
      this.streams.set(runId, stream);
    }
    stream.events.push(event);
    if (event.type === 'end') this.ended.set(runId, Date.now());
    for (const listener of stream.listeners) {
      try {
        listener(event);
      } catch (error) {
        this.options.onError(error); // a listener's failure is its own; the others still get the event
      }
    }
  }

  async appendEnd(runId: string, json: string, notBefore: EventId, prevIfEmpty: EventId | null): Promise<RunEvent> {
    const last = this.streams.get(runId)?.events.at(-1);
    if (last?.type === 'end') return last;
    const prev = last?.id ?? prevIfEmpty;
    const id = prev === null || compareEventIds(notBefore, prev) > 0 ? notBefore : { ms: prev.ms, seq: prev.seq + 1 };
    const end: RunEvent = { id, prev, type: 'end', json };
    this.append(runId, end);
    return end;
  }

  async read(runId: string, after: EventId | null, limit: number): Promise<RunEvent[]> {
    const events = this.streams.get(runId)?.events ?? [];
    const start = after === null ? 0 : firstAfter(events, after);
    return events.slice(start, start + limit);
  }

  subscribe(runId: string, _after: EventId | null, listener: EventListener): () => void {
    let stream = this.streams.get(runId);
    if (stream === undefined) {
      stream = { events: [], listeners: new Set() };
      this.streams.set(runId, stream);
    }
    const followed = stream;
    // A distinct wrapper per call, so the same function may follow twice and stop once each.
    const entry: EventListener = (event) => listener(event);
    followed.listeners.add(entry);
    return () => {
      followed.listeners.delete(entry);
      // A follow of a run this instance holds nothing of (finished long ago) leaves nothing behind.
      if (followed.listeners.size === 0 && followed.events.length === 0 && this.streams.get(runId) === followed) {
        this.streams.delete(runId);
      }
    };
  }

  stats(): EventStoreStats {
    return { connections: 0, inFlightOps: 0, pendingEvents: 0 };
  }

  async ping(): Promise<void> {
    if (this.closed !== undefined) throw new Error('event store is closed');
  }

  /** Drops streams that ended more than the TTL ago. */
  expire(nowMs: number): void {
    this.ended.evictExpired(nowMs);
  }

  /** Forgets an ended run's events; its listeners (if any) stay and read the archive. */
  private drop(runId: string): void {
    const stream = this.streams.get(runId);
    if (stream === undefined) return;
    if (stream.listeners.size === 0) this.streams.delete(runId);
    else stream.events.length = 0;
  }

  /** Runs with events held now (for tests and the capacity view). */
  get size(): number {
    return this.streams.size;
  }

  close(): Promise<void> {
    this.closed ??= this.sweeper.stop();
    return this.closed;
  }
}

/** Index of the first event whose id is greater than `after` (binary search: ids increase). */
function firstAfter(events: readonly RunEvent[], after: EventId): number {
  let lo = 0;
  let hi = events.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareEventIds((events[mid] as RunEvent).id, after) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
