import type { EventArchiveRepository } from '../db/event-archive-repository.js';
import type { EventArchiver } from './event-archiver.js';
import { compareEventIds, eventJson, takeChain, type EventId, type RunEvent } from '../domain/index.js';
import type { EventListener, EventStore } from './event-store.js';

/**
 * A run's events, wherever they are: appended to the fast stream (memory or Redis) and to
 * the durable archive; read from the fast stream when it continues the reader's chain, else
 * from the archive (trimmed, expired, or lost in a Redis restart).
 */
/** Events read per page when archiving what a dead writer left in the fast stream. */
const TAIL_PAGE = 100;

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

  /**
   * Whether `after` is at or past the run's `end` event, for a resume of a finished run. The
   * `end` is looked up in the archive, else awaited live for up to `timeoutMs` (it may not be
   * appended yet), else looked up in the archive once more (it was on its way there).
   */
  async isPastEnd(runId: string, after: EventId, timeoutMs: number): Promise<boolean> {
    let known: (id: EventId | null) => void = () => undefined;
    const live = new Promise<EventId | null>((resolve) => (known = resolve));
    // Subscribe before looking, so an `end` appended meanwhile is not missed.
    const unsubscribe = this.subscribe(runId, null, (event) => {
      if (event.type === 'end') known(event.id);
    });
    let deadline: NodeJS.Timeout | undefined;
    try {
      let endId = await this.deps.archive.endId(runId);
      if (endId !== null) return compareEventIds(after, endId) >= 0;
      // The `end` is a run's last event: one after `after` means `after` comes before it.
      if (await this.fastStreamHasAfter(runId, after)) return false;
      deadline = setTimeout(() => known(null), timeoutMs);
      endId = (await live) ?? (await this.deps.archive.endId(runId));
      return endId !== null && compareEventIds(after, endId) >= 0;
    } finally {
      clearTimeout(deadline);
      unsubscribe();
    }
  }

  /** Whether the archive holds the run's `end`. */
  async hasEnd(runId: string): Promise<boolean> {
    return (await this.deps.archive.endId(runId)) !== null;
  }

  /**
   * Closes the stream of a run that ended without its `end` (its instance died or lost the
   * database): appends an `end` at the run's finish time or later, after whatever the fast
   * stream holds (so live listeners on every instance get it, and a writer that comes back can
   * only add events after it), then archives the events the fast stream holds beyond the
   * archive and the `end`. Idempotent: a run whose archive holds an `end` is left alone.
   */
  async ensureEnd(runId: string, data: { status: string; error?: unknown }, finishedAtMs: number): Promise<void> {
    if (await this.hasEnd(runId)) return;
    const archived = await this.deps.archive.lastId(runId);
    const notBefore: EventId =
      archived === null || finishedAtMs > archived.ms ? { ms: finishedAtMs, seq: 0 } : { ms: archived.ms, seq: archived.seq + 1 };
    const json = eventJson(data);
    let end: RunEvent;
    try {
      end = await this.deps.store.appendEnd(runId, json, notBefore, archived);
    } catch (error) {
      this.deps.onError(error); // the fast stream is down: the end follows what the archive has
      end = { id: notBefore, prev: archived, type: 'end', json };
    }
    try {
      await this.archiveFastStreamUpTo(runId, archived, end);
    } catch (error) {
      this.deps.onError(error); // what the archive lacks before the end stays a gap, readers' to report
    }
    this.deps.archiver.add(runId, end);
    await this.flushArchive();
  }

  /**
   * Archives the events the fast stream holds after `last` and before `end` that continue the
   * chain: a dead writer may have taken them to Redis and not yet to the archive.
   */
  private async archiveFastStreamUpTo(runId: string, last: EventId | null, end: RunEvent): Promise<void> {
    while (end.prev !== null && (last === null || compareEventIds(last, end.prev) < 0)) {
      const page = takeChain(await this.deps.store.read(runId, last, TAIL_PAGE), last).filter((e) => compareEventIds(e.id, end.id) < 0);
      for (const event of page) this.deps.archiver.add(runId, event);
      const tail = page.at(-1);
      if (tail === undefined) return; // a gap the fast stream no longer fills
      last = tail.id;
    }
  }

  /** Whether the fast stream holds an event of the run after `after`; false when it is down. */
  private async fastStreamHasAfter(runId: string, after: EventId): Promise<boolean> {
    try {
      return (await this.deps.store.read(runId, after, 1)).length > 0;
    } catch (error) {
      this.deps.onError(error); // the wait for the `end` answers instead
      return false;
    }
  }
}
