import type { EventId, RunEvent } from '../domain/index.js';

/** Called with new events of a run, in order (possibly with gaps a reader must fill by reading). */
export type EventListener = (event: RunEvent) => void;

export interface EventStoreStats {
  /** Connections to an external server (0 in-process). */
  readonly connections: number;
  /** Commands sent and not yet answered. */
  readonly inFlightOps: number;
  /** Events accepted and not yet written. */
  readonly pendingEvents: number;
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
   * event starts its retention clock.
   */
  append(runId: string, event: RunEvent): void;
  /**
   * Appends the `end` of a run whose writer is gone, after whatever the stream holds at that
   * moment, atomically however many instances try: at `notBefore` or later, its `prev` the
   * stream's last event (`prevIfEmpty` for an empty stream). A stream that already ends gets
   * nothing more: its `end` is returned. Listeners everywhere get the `end` returned.
   */
  appendEnd(runId: string, json: string, notBefore: EventId, prevIfEmpty: EventId | null): Promise<RunEvent>;
  /** Stored events strictly after `after` (from the first when null), oldest first, at most `limit`. */
  read(runId: string, after: EventId | null, limit: number): Promise<RunEvent[]>;
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
