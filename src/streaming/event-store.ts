import type { EventId } from './event-id.js';
import type { RunEvent } from './run-event.js';

/** Called with each new event of a run, in order. */
export type EventListener = (event: RunEvent) => void;

/**
 * Where a run's events live while clients may want them. Two implementations share one
 * contract test suite: in-process (single instance) and Redis (several instances).
 */
export interface EventStore {
  /**
   * Appends an event; returns at once (writes are batched) and keeps per-run order. The
   * run's `end` event starts its retention clock.
   */
  append(runId: string, event: RunEvent): void;
  /** Events strictly after `after` (from the first when null), oldest first, at most `limit`. */
  read(runId: string, after: EventId | null, limit: number): Promise<RunEvent[]>;
  /** Follows new events of a run; returns the function that stops following. */
  subscribe(runId: string, listener: EventListener): () => void;
  /** Resolves when the store answers; rejects naming what failed. */
  ping(): Promise<void>;
  /** Flushes pending writes and stops background work. Idempotent. */
  close(): Promise<void>;
}
