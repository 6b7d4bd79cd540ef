import { compareEventIds, eventBytes, type EventId, type RunEvent } from '../../domain/index.js';
import type { ByteBudget } from '../../lib/byte-budget.js';

/** What one run's cache holds at most. */
export interface CatchUpCacheLimits {
  readonly maxEvents: number;
  /** In `eventBytes`. */
  readonly maxBytes: number;
}

/**
 * A run's cache by default: a first page and the next (FIRST_PAGE_EVENTS, then about 500 events
 * or 256 KB), for a run of small events. The events' SSE frames, built once and kept with them,
 * cost about as much again.
 */
export const CATCH_UP_CACHE_LIMITS: CatchUpCacheLimits = { maxEvents: 500, maxBytes: 64 * 1024 };
/** What the caches of all runs hold at most by default, in `eventBytes`: 256 runs with full caches. */
export const CATCH_UP_CACHE_TOTAL_BYTES = 16 * 1024 * 1024;

/**
 * A remote run's events from its first one on, as this instance's listeners read them from Redis
 * and receive them live, so that the next listener's catch-up pages come from memory rather than
 * from one XRANGE per listener. It holds one unbroken chain (each event's `prev` is the one
 * before), from the run's start, up to its bounds (per run, and a budget all runs share): past
 * them it stops growing and keeps what it has, so later pages are read from Redis again. The
 * events are the very objects handed to listeners, so each event's SSE frame is built once.
 */
export class CatchUpCache {
  private readonly events: RunEvent[] = [];
  private bytes = 0;
  /** Nothing more is added: a bound was reached, the run's `end` is in, or the cache was released. */
  private sealed = false;
  private released = false;

  constructor(
    private readonly limits: CatchUpCacheLimits,
    private readonly budget: ByteBudget,
  ) {}

  /** The id of the last event held; null while it holds none (it starts at the run's start). */
  get tail(): EventId | null {
    return this.events.at(-1)?.id ?? null;
  }

  /** Events held (for tests and metrics). */
  get size(): number {
    return this.events.length;
  }

  /**
   * Adds the events, in order, that extend the chain: those at or before the tail are already
   * here; the first that does not follow the tail stops it (a gap the next listener's read from
   * the tail fills, or the stream lost events, which the cache then never holds).
   */
  extend(events: readonly RunEvent[]): void {
    for (const event of events) if (!this.add(event)) return;
  }

  /** Adds the event if it follows the tail (see `extend`); false when it does not, or the cache takes no more. */
  add(event: RunEvent): boolean {
    if (this.sealed) return false;
    const tail = this.tail;
    if (tail !== null && compareEventIds(event.id, tail) <= 0) return true;
    const follows = tail === null ? event.prev === null : event.prev !== null && compareEventIds(event.prev, tail) === 0;
    if (!follows) return false;
    const bytes = eventBytes(event);
    const fits = this.events.length < this.limits.maxEvents && this.bytes + bytes <= this.limits.maxBytes;
    if (!fits || !this.budget.take(bytes)) {
      this.sealed = true; // a full cache keeps the run's first pages: they are what a new listener reads first
      return false;
    }
    this.events.push(event);
    this.bytes += bytes;
    if (event.type === 'end') this.sealed = true;
    return true;
  }

  /**
   * The page `read` would return (the events after `after`, at most `limit`, up to the one that
   * reaches `maxBytes`) when the cache holds all of it: the page is full, or ends with the run's
   * `end`, or `complete` says no event after the tail exists yet that the caller will not get
   * live. Otherwise undefined: read Redis.
   */
  page(after: EventId | null, limit: number, maxBytes: number, complete: boolean): RunEvent[] | undefined {
    if (this.released) return undefined;
    const page: RunEvent[] = [];
    let bytes = 0;
    for (let i = this.firstAfter(after); i < this.events.length && page.length < limit && bytes < maxBytes; i++) {
      const event = this.events[i] as RunEvent;
      page.push(event);
      bytes += eventBytes(event);
    }
    const full = page.length >= limit || bytes >= maxBytes || page.at(-1)?.type === 'end';
    return full || complete ? page : undefined;
  }

  /** Gives the cache's bytes back to the budget and holds nothing more. Idempotent. */
  release(): void {
    this.budget.give(this.bytes);
    this.bytes = 0;
    this.events.length = 0;
    this.sealed = true;
    this.released = true;
  }

  /** The index of the first event after `after` (the cache starts at the run's start: every `after` is covered up to the tail). */
  private firstAfter(after: EventId | null): number {
    if (after === null) return 0;
    let low = 0;
    let high = this.events.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (compareEventIds((this.events[middle] as RunEvent).id, after) <= 0) low = middle + 1;
      else high = middle;
    }
    return low;
  }
}
