import { eventBytes, type EventId, type RunEvent } from '../domain/index.js';

/** Called with new events of a run, in order (possibly with gaps a reader must fill by reading). */
export type EventListener = (event: RunEvent) => void;

export interface EventStoreStats {
  /** Connections to an external server (0 in-process). */
  readonly connections: number;
  /** Commands sent and not yet answered. */
  readonly inFlightOps: number;
  /** Events accepted and not yet written. */
  readonly pendingEvents: number;
  /** node-redis' reconnect attempts since start-up (each failed attempt counts). */
  readonly reconnectAttempts: number;
  /** Reconnects that made a connection ready again since start-up. */
  readonly reconnects: number;
}

export interface ReadOptions {
  /**
   * The caller subscribed to the run on this instance before reading (a follower catching up):
   * the page may come from events this instance already holds, and end before events written
   * moments ago, which reach the caller live. Default false: the stream as stored now.
   */
  readonly following?: boolean;
}

/**
 * The fast stream of each run's events while clients may want them. Two implementations
 * share one contract test suite: in-process (single instance) and Redis (several instances).
 * It may lose events (trim, TTL, a Redis restart); the archive keeps them all, and readers
 * notice a loss through `RunEvent.prev`.
 */
export interface EventStore {
  /**
   * Appends an event of a run this instance runs; returns at once (writes are batched),
   * keeps per-run order, and feeds this instance's listeners in-process. The run's `end`
   * event starts its retention clock. A run keeps its newest events, about STREAM_MAXLEN of
   * them and STREAM_MAX_BYTES (`eventBytes`). Returns the bytes of the run's events accepted
   * and not yet written (the run's share of the backlog; 0 when written at once).
   */
  append(runId: string, event: RunEvent): number;
  /**
   * Appends the `end` of a run whose writer is gone, after whatever the stream holds at that
   * moment, atomically however many instances try: at `notBefore` or later, its `prev` the
   * stream's last event (`prevIfEmpty` for an empty stream). A stream that already ends gets
   * nothing more: its `end` is returned. Listeners everywhere get the `end` returned.
   */
  appendEnd(runId: string, json: string, notBefore: EventId, prevIfEmpty: EventId | null): Promise<RunEvent>;
  /**
   * Stored events strictly after `after` (from the first when null), oldest first: at most
   * `limit`, and events (`eventBytes`) only until their sum reaches `maxBytes` (at least one).
   */
  read(runId: string, after: EventId | null, limit: number, maxBytes?: number, options?: ReadOptions): Promise<RunEvent[]>;
  /** Resolves once every event appended so far is written (or given up, the archive keeping it). */
  written(): Promise<void>;
  /**
   * Follows new events of a run, on whichever instance it runs, from `after` on. Returns the
   * function that stops following (idempotent).
   */
  subscribe(runId: string, after: EventId | null, listener: EventListener): () => void;
  /** Resolves when the store answers; rejects naming what failed. */
  ping(): Promise<void>;
  stats(): EventStoreStats;
  /** Flushes pending writes and stops background work. Idempotent. */
  close(): Promise<void>;
}

/**
 * The first events until their `eventBytes` reach `maxBytes` (the one that reaches it included,
 * so a page cut for bytes has reached the bound, and there is always at least one).
 */
export function pageOfBytes(events: RunEvent[], maxBytes: number): RunEvent[] {
  let bytes = 0;
  let count = 0;
  while (count < events.length && bytes < maxBytes) bytes += eventBytes(events[count++] as RunEvent);
  return count === events.length ? events : events.slice(0, count);
}
