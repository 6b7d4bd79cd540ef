import { setTimeout as sleep } from 'node:timers/promises';
import pLimit, { type LimitFunction } from 'p-limit';
import { abortPromise } from '../concurrency/abort-promise.js';
import type { EventArchiveRepository } from '../db/event-archive-repository.js';
import type { EventArchiver } from './event-archiver.js';
import { compareEventIds, eventJson, takeChain, type EventId, type RunEvent } from '../domain/index.js';
import type { EventListener, EventStore, ReadOptions } from './event-store.js';

/** Pauses between attempts of a drain whose writes failed (the database or Redis is away). */
const DRAIN_RETRY_MIN_MS = 50;
const DRAIN_RETRY_MAX_MS = 1_000;

/** Events read per page when archiving what a dead writer left in the fast stream. */
const TAIL_PAGE = 100;
/** Bytes (`eventBytes`) read per page at most, the same bound as a catch-up page. */
const TAIL_PAGE_BYTES = 256 * 1024;

/**
 * A run's events, wherever they are: appended to the fast stream (memory or Redis) and to
 * the durable archive; read from the fast stream when it continues the reader's chain, else
 * from the archive (trimmed, expired, or lost in a Redis restart).
 */
export class EventLog {
  /** Archive page reads in flight at once: a thousand catch-ups queue here, not in the database pool. */
  private readonly archiveReads: LimitFunction;
  private appended = 0;

  constructor(
    private readonly deps: {
      readonly store: EventStore;
      readonly archiver: EventArchiver;
      readonly archive: EventArchiveRepository;
      readonly onError: (error: unknown) => void;
      /** Archive reads at once (default 1). */
      readonly archiveReadConcurrency?: number;
    },
  ) {
    this.archiveReads = pLimit(Math.max(1, deps.archiveReadConcurrency ?? 1));
  }

  /**
   * Appends to the fast stream and queues for the archive; returns the run's backlog in bytes
   * (`eventBytes` of its events not yet archived, or not yet written to the fast stream,
   * whichever is more: both are its newest events, so the larger is all that the two hold).
   */
  append(runId: string, event: RunEvent): number {
    this.appended += 1;
    const unwritten = this.deps.store.append(runId, event);
    const unarchived = this.deps.archiver.add(runId, event);
    return unwritten > unarchived ? unwritten : unarchived;
  }

  /**
   * Waits until every event appended so far is archived and written to the fast stream, asking
   * the archiver to write now rather than at its next interval (a run's backlog passed its
   * bound). Failed writes are retried after a growing pause. True once written; false when that
   * did not happen within `timeoutMs`, or `signal` aborted first.
   */
  async drain(timeoutMs: number, signal: AbortSignal): Promise<boolean> {
    const deadlineMs = Date.now() + timeoutMs;
    // One signal for the deadline and the run's abort, and one timer, cleared however it ends.
    const stop = new AbortController();
    const timer = setTimeout(() => stop.abort(), timeoutMs);
    const onAbort = () => stop.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) stop.abort();
    const stopped = abortPromise(stop.signal);
    try {
      for (let pauseMs = DRAIN_RETRY_MIN_MS; !stop.signal.aborted; pauseMs = Math.min(DRAIN_RETRY_MAX_MS, pauseMs * 2)) {
        try {
          await Promise.race([Promise.all([this.deps.archiver.flush(), this.deps.store.written()]), stopped.promise]);
          return true;
        } catch {
          // A write failed (the archiver's own loop reports its failures; a retry follows), or the stop.
        }
        if (stop.signal.aborted || deadlineMs - Date.now() <= pauseMs) return false;
        await sleep(pauseMs, undefined, { signal: stop.signal }).catch(() => undefined); // the stop ends the loop
      }
      return false;
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      stopped.dispose();
    }
  }

  /** Events appended by this instance's runs since start-up. */
  get appendedCount(): number {
    return this.appended;
  }

  /** Archive reads allowed at once, in flight, and waiting for their turn. */
  get archiveReadStats(): { readonly limit: number; readonly active: number; readonly queued: number } {
    const { concurrency, activeCount, pendingCount } = this.archiveReads;
    return { limit: concurrency, active: activeCount, queued: pendingCount };
  }

  /** Resolves once every event appended so far is archived. */
  flushArchive(): Promise<void> {
    return this.deps.archiver.flush();
  }

  /**
   * Events strictly after `after` that continue the chain from it, oldest first, at most
   * `limit` and up to the one whose `eventBytes` reach `maxBytes`; empty when none is available
   * yet (the run has produced nothing newer, or it has not reached the archive yet). `options`
   * go to the fast stream (EventStore.read).
   */
  async read(runId: string, after: EventId | null, limit: number, maxBytes?: number, options?: ReadOptions): Promise<RunEvent[]> {
    let fast: RunEvent[] = [];
    try {
      fast = takeChain(await this.deps.store.read(runId, after, limit, maxBytes, options), after);
    } catch (error) {
      this.deps.onError(error); // the fast stream is down: the archive answers
    }
    if (fast.length > 0) return fast;
    try {
      const archived = await this.archiveReads(() => this.deps.archive.read(runId, after, limit, maxBytes));
      return takeChain(archived, after);
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
      const page = takeChain(await this.deps.store.read(runId, last, TAIL_PAGE, TAIL_PAGE_BYTES), last).filter(
        (e) => compareEventIds(e.id, end.id) < 0,
      );
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
