import type { EventArchiveRepository } from '../db/event-archive-repository.js';
import type { EventArchiver } from './event-archiver.js';
import { eventJson, takeChain, type EventId, type RunEvent } from '../domain/index.js';
import type { EventListener, EventStore } from './event-store.js';

/**
 * A run's events, wherever they are: appended to the fast stream (memory or Redis) and to
 * the durable archive; read from the fast stream when it continues the reader's chain, else
 * from the archive (trimmed, expired, or lost in a Redis restart).
 */
export class EventLog {
  constructor(
    private readonly deps: {
      readonly store: EventStore;
      readonly archiver: EventArchiver;
      readonly archive: EventArchiveRepository;
      readonly onError: (error: unknown) => void;
    },
  ) {}

  append(runId: string, event: RunEvent): void {
    this.deps.store.append(runId, event);
    this.deps.archiver.add(runId, event);
  }

  /** Resolves once every event appended so far is archived. */
  flushArchive(): Promise<void> {
    return this.deps.archiver.flush();
  }

  /**
   * Events strictly after `after` that continue the chain from it, oldest first; empty when
   * none is available yet (the run has produced nothing newer, or it has not reached the
   * archive yet).
   */
  async read(runId: string, after: EventId | null, limit: number): Promise<RunEvent[]> {
    let fast: RunEvent[] = [];
    try {
      fast = takeChain(await this.deps.store.read(runId, after, limit), after);
    } catch (error) {
      this.deps.onError(error); // the fast stream is down: the archive answers
    }
    if (fast.length > 0) return fast;
    try {
      return takeChain(await this.deps.archive.read(runId, after, limit), after);
    } catch (error) {
      // The database is away: nothing more can be read now. Readers wait for live events and
      // read again later, rather than lose their stream.
      this.deps.onError(error);
      return [];
    }
  }

  subscribe(runId: string, after: EventId | null, listener: EventListener): () => void {
    return this.deps.store.subscribe(runId, after, listener);
  }

  /** The id of the run's archived `end` event, or null. */
  endId(runId: string): Promise<EventId | null> {
    return this.deps.archive.endId(runId);
  }

  /**
   * Writes an `end` for a run that ended without one (its instance died): after the last
   * archived event, at the run's finish time, straight to the archive. Idempotent.
   */
  async ensureEnd(runId: string, data: { status: string; error?: unknown }, finishedAtMs: number): Promise<void> {
    if ((await this.deps.archive.endId(runId)) !== null) return;
    const last = await this.deps.archive.lastId(runId);
    const id: EventId = last === null || finishedAtMs > last.ms ? { ms: finishedAtMs, seq: 0 } : { ms: last.ms, seq: last.seq + 1 };
    await this.deps.archive.insert([{ runId, event: { id, prev: last, type: 'end', json: eventJson(data) } }]);
  }
}
