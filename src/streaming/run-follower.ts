import { compareEventIds, continuesFrom, eventBytes, type EventId, type RunEvent } from '../domain/index.js';
import type { EventLog } from './event-log.js';

/** Most events per catch-up page. */
const READ_BATCH = 500;
/**
 * Events asked for in the first page, before the run's event size is known: a page of large
 * events read from Redis arrives whole before it is cut to its bytes. Later pages ask for as
 * many as the page's bytes hold at the size seen so far.
 */
const FIRST_PAGE_EVENTS = 16;
/** Bytes (`eventBytes`) per catch-up page at most (and no more than the reader's SSE_MAX_BUFFER_BYTES). */
const PAGE_BYTES = 256 * 1024;
/** Catch-up and queued events go to the sink in writes of about this many bytes. */
const SEND_CHUNK_BYTES = 64 * 1024;
const GAP_RETRY_MIN_MS = 10;
const GAP_RETRY_MAX_MS = 1_000;
/** A gap no read fills in this time means lost events: stop, and let the client resume. */
const GAP_GIVE_UP_MS = 30_000;
const FOLLOWING = { following: true } as const;

export class UnfillableGapError extends Error {
  constructor(runId: string, after: EventId | null) {
    super(`events of run ${runId} after ${after === null ? 'the start' : `${after.ms}-${after.seq}`} are missing`);
    this.name = 'UnfillableGapError';
  }
}

/** Where a follower sends a run's events: an SSE response (SseWriter). */
export interface FollowSink {
  /** Sends events in one write; false when the listener is gone. */
  send(events: readonly RunEvent[]): boolean;
  /** Whether the sink takes more now (its unsent bytes are under its high-water mark). */
  readonly hasRoom: boolean;
  /** Resolves once the sink has room again, or is gone. */
  drained(): Promise<void>;
  /** What the event costs once written, in bytes (near enough): paces writes and bounds the queue. */
  bytesOf(event: RunEvent): number;
}

/** What a follower needs of the log: the EventLog, or a fake in tests. */
export type FollowLog = Pick<EventLog, 'read' | 'subscribe'>;

export interface FollowOptions {
  readonly eventLog: FollowLog;
  readonly runId: string;
  /** Deliver strictly after this id (null: from the first event). */
  readonly after: EventId | null;
  readonly sink: FollowSink;
  /** Ends the follow (client gone). */
  readonly signal: AbortSignal;
  /**
   * Called after `idleMs` without an event (heartbeats, end-of-run checks); returning true
   * makes the follower read the log again.
   */
  readonly onIdle: () => Promise<boolean> | boolean;
  readonly idleMs: number;
  /**
   * Live events waiting for this reader beyond this many bytes mean it has fallen behind
   * (SSE_MAX_BUFFER_BYTES); catch-up pages are at most this big too.
   */
  readonly maxQueuedBytes: number;
  /** Called once when the reader has fallen behind; the caller disconnects it. */
  readonly onOverflow: () => void;
}

/**
 * Where the follower is:
 * - `catching-up`: reads the log page by page (when it must), then sends the queued live
 *   events that continue the chain;
 * - `live`: caught up and parked; a live event that continues the chain goes out straight from
 *   the store's callback, anything else is queued and wakes the loop;
 * - `filling-gap`: the queued live events do not continue from the last one sent, so the
 *   missing ones are read again after a growing pause;
 * - `finished`: `end` sent or the sink refused (and, once the loop is over, for any reason).
 * The abort (client gone) stops the loop whatever the state.
 */
type FollowState = 'catching-up' | 'live' | 'filling-gap' | 'finished';

/**
 * Sends a run's events to one reader: catch-up from the log, then live, exactly once and in
 * order, until `end` (resolves), the abort or the sink's refusal (resolves), or a gap nothing
 * fills (rejects with UnfillableGapError). A reader whose resume point is at or past the run's
 * `end` gets nothing, and the follow ends with the run.
 *
 * Catch-up reads the log page by page, each bounded in bytes, and reads the next page only
 * once the sink has taken the last one: a reader that stops reading holds one page and its
 * sink's unsent bytes, whatever the size of the run.
 *
 * Live events are checked against the chain (`prev`): a duplicate is skipped, a gap is filled
 * by reading (the fast stream, else the archive) before going on. A reader that is caught up
 * and whose sink has room gets each live event straight from the store's callback, with no
 * queue, promise or timer per event: with thousands of listeners this is the hot path.
 */
export class RunFollower {
  private state: FollowState = 'catching-up';
  /** The id of the last event sent, or the resume point. */
  private last: EventId | null;
  /** Whether catching up starts with a read of the log (else it sends queued events only). */
  private mustRead = true;
  /** Queued live events were dropped (see queueFull): the log must be read again for them. */
  private queueDropped = false;
  /** Live events that arrived while the follower was not parked (or while they left a gap). */
  private readonly queued: RunEvent[] = [];
  private queuedBytes = 0;
  private overflowed = false;
  /** When an event was last sent or the idle callback last ran. */
  private lastActivityMs = Date.now();
  /** Resumes the loop's current wait (parked or pausing in a gap). */
  private wake: (() => void) | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private gapDelayMs = 0;
  private gapSinceMs = 0;
  /** Events the next catch-up page asks for: as many as a page's bytes hold at the size seen so far. */
  private pageEvents = FIRST_PAGE_EVENTS;
  private readonly pageBytes: number;
  private following: Promise<void> | undefined;

  constructor(private readonly options: FollowOptions) {
    this.last = options.after;
    this.pageBytes = Math.min(PAGE_BYTES, options.maxQueuedBytes);
  }

  /** Follows the run until it ends, the abort, the sink's refusal or an unfillable gap; idempotent. */
  follow(): Promise<void> {
    this.following ??= this.run();
    return this.following;
  }

  private async run(): Promise<void> {
    const { eventLog, runId, signal } = this.options;
    // Subscribe before catching up, so nothing slips between the read and the subscription.
    const unsubscribe = eventLog.subscribe(runId, this.last, this.onLiveEvent);
    signal.addEventListener('abort', this.notify);
    try {
      while (!this.done) await this.step();
    } finally {
      this.state = 'finished';
      clearTimeout(this.idleTimer);
      signal.removeEventListener('abort', this.notify);
      unsubscribe();
    }
  }

  private get done(): boolean {
    return this.state === 'finished' || this.options.signal.aborted;
  }

  private step(): Promise<void> {
    switch (this.state) {
      case 'catching-up':
        return this.catchUp();
      case 'live':
        return this.park();
      case 'filling-gap':
        return this.fillGap();
      case 'finished':
        return Promise.resolve();
      default: {
        const unknown: never = this.state;
        throw new Error(`unknown follow state ${String(unknown)}`);
      }
    }
  }

  /** One page of the log (a page full by count or bytes means more to read), else the queued live chain. */
  private async catchUp(): Promise<void> {
    if (this.takeQueueDropped()) this.mustRead = true;
    if (this.mustRead) {
      const { sink } = this.options;
      if (!sink.hasRoom) await sink.drained(); // the next page only once the last one is on its way
      if (this.done) return;
      const limit = this.pageEvents;
      // Subscribed before reading: a page may come from what this instance already holds of the run.
      const page = await this.options.eventLog.read(this.options.runId, this.last, limit, this.pageBytes, FOLLOWING);
      if (this.done) return;
      if (page.length > 0) {
        let bytes = 0;
        for (const event of page) bytes += eventBytes(event);
        this.pageEvents = Math.max(1, Math.min(READ_BATCH, Math.floor((this.pageBytes * page.length) / bytes)));
        await this.sendPaced(page);
        this.mustRead = page.length >= limit || bytes >= this.pageBytes || this.takeQueueDropped();
        return;
      }
      this.mustRead = this.takeQueueDropped();
      if (this.mustRead) return;
    }
    const chain = this.takeQueuedChain();
    if (chain.length > 0) return this.sendPaced(chain);
    if (this.done) return; // the `end` came at or before the resume point
    this.state = this.queued.length > 0 ? 'filling-gap' : 'live';
  }

  private takeQueueDropped(): boolean {
    const dropped = this.queueDropped;
    this.queueDropped = false;
    return dropped;
  }

  /** Waits for a queued live event, the end or the abort; on idle, calls `onIdle`. */
  private async park(): Promise<void> {
    const woken = await this.waitIdle();
    if (this.done) return;
    this.state = 'catching-up';
    if (woken) return;
    this.lastActivityMs = Date.now(); // the next idle call is idleMs after this one
    this.mustRead = await this.options.onIdle();
  }

  /**
   * What is missing is in the store or on its way to the archive: read now, and if that is not
   * enough, again after a growing pause (a batch in flight), for at most GAP_GIVE_UP_MS.
   */
  private async fillGap(): Promise<void> {
    if (this.gapDelayMs === 0) this.gapSinceMs = Date.now();
    else if (Date.now() - this.gapSinceMs > GAP_GIVE_UP_MS) throw new UnfillableGapError(this.options.runId, this.last);
    if (this.gapDelayMs > 0) await this.pause(this.gapDelayMs);
    this.gapDelayMs = Math.min(GAP_RETRY_MAX_MS, Math.max(GAP_RETRY_MIN_MS, this.gapDelayMs * 2));
    this.mustRead = true;
    this.state = 'catching-up';
  }

  /** The store's callback: the hot path when parked, else the queue (bounded by maxQueuedBytes). */
  private readonly onLiveEvent = (event: RunEvent): void => {
    if (this.overflowed || this.state === 'finished') return;
    if (this.state === 'live' && this.queued.length === 0 && this.options.sink.hasRoom) {
      if (this.last !== null && compareEventIds(event.id, this.last) <= 0) return this.skip(event);
      if (continuesFrom(event, this.last)) {
        this.send([event]);
        if (this.done) this.notify(); // the `end`, or the sink refused: the loop stops
        return;
      }
    }
    this.queued.push(event);
    this.queuedBytes += this.options.sink.bytesOf(event);
    if (this.queuedBytes > this.options.maxQueuedBytes) this.queueFull();
    this.notify();
  };

  /**
   * The live events waiting passed maxQueuedBytes. When the listener is what lags (its socket
   * is full), it is cut off. When it keeps up and it is this follower's reading that lags (a
   * fast run caught up page by page), the queue goes (the log holds every event) and the
   * follower reads on from where it is.
   */
  private queueFull(): void {
    if (!this.options.sink.hasRoom) {
      this.overflowed = true;
      this.options.onOverflow();
      return;
    }
    this.queued.length = 0;
    this.queuedBytes = 0;
    this.queueDropped = true;
  }

  /**
   * An event at or before `last`: already sent, or before the resume point. An `end` there
   * means the resume point is at or past the run's end: nothing will come, the follow ends.
   */
  private skip(event: RunEvent): void {
    if (event.type !== 'end') return;
    this.state = 'finished';
    this.notify();
  }

  private readonly notify = (): void => {
    this.wake?.();
    this.wake = undefined;
  };

  private send(events: readonly RunEvent[]): void {
    const tail = events.at(-1);
    if (tail === undefined) return;
    if (!this.options.sink.send(events)) {
      this.state = 'finished';
      return;
    }
    this.last = tail.id;
    this.lastActivityMs = Date.now();
    if (tail.type === 'end') this.state = 'finished';
  }

  /**
   * Sends events in writes of about SEND_CHUNK_BYTES, waiting for the sink to drain between
   * them: a catch-up of large events never becomes one huge string or socket buffer.
   */
  private async sendPaced(events: readonly RunEvent[]): Promise<void> {
    const { sink } = this.options;
    let start = 0;
    let bytes = 0;
    for (let i = 0; i < events.length; i++) {
      bytes += sink.bytesOf(events[i] as RunEvent);
      if (bytes < SEND_CHUNK_BYTES && i < events.length - 1) continue;
      this.send(events.slice(start, i + 1));
      if (this.done) break;
      start = i + 1;
      bytes = 0;
      if (!sink.hasRoom) await sink.drained();
    }
    this.gapDelayMs = 0; // something was sent: a gap found later is a new one
  }

  /** The queued live events that continue the chain from `last` (duplicates dropped). */
  private takeQueuedChain(): RunEvent[] {
    const chain: RunEvent[] = [];
    let tail = this.last;
    while (this.queued.length > 0) {
      const event = this.queued[0] as RunEvent;
      if (tail !== null && compareEventIds(event.id, tail) <= 0) {
        this.dequeue(); // already sent
        this.skip(event);
        continue;
      }
      if (!continuesFrom(event, tail)) break;
      this.dequeue();
      chain.push(event);
      tail = event.id;
      if (event.type === 'end') break;
    }
    return chain;
  }

  private dequeue(): void {
    this.queuedBytes -= this.options.sink.bytesOf(this.queued.shift() as RunEvent);
  }

  /**
   * Resolves true when woken (a queued live event, the end, the abort), false once `idleMs`
   * passed since the last event sent (by the loop or the store's callback) or idle call. One
   * timer per wait, re-armed when an event went out meanwhile.
   */
  private waitIdle(): Promise<boolean> {
    if (this.queued.length > 0 || this.done) return Promise.resolve(true);
    const { idleMs } = this.options;
    return new Promise((resolve) => {
      const arm = (ms: number) => {
        this.idleTimer = setTimeout(() => {
          const sinceMs = Date.now() - this.lastActivityMs;
          if (sinceMs < idleMs) return arm(idleMs - sinceMs);
          this.wake = undefined;
          resolve(false);
        }, ms);
      };
      arm(Math.max(0, idleMs - (Date.now() - this.lastActivityMs)));
      this.wake = () => {
        clearTimeout(this.idleTimer);
        resolve(true);
      };
    });
  }

  /** Resolves after `ms` (a gap being filled), or at once when woken. */
  private pause(ms: number): Promise<void> {
    if (this.options.signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
