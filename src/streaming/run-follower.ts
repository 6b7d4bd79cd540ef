import { compareEventIds, continuesFrom, type EventId, type RunEvent } from '../domain/index.js';
import type { EventLog } from './event-log.js';
import { sseFrame } from '../http/sse/sse-frame.js';

const READ_BATCH = 500;
/** Catch-up and queued events go to the socket in writes of about this many characters. */
const SEND_CHUNK_CHARS = 64 * 1024;
const GAP_RETRY_MIN_MS = 10;
const GAP_RETRY_MAX_MS = 1_000;
/** A gap no read fills in this time means lost events: stop, and let the client resume. */
const GAP_GIVE_UP_MS = 30_000;

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
}

export interface FollowOptions {
  readonly log: EventLog;
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
  /** Live events waiting for this reader beyond this many bytes mean it has fallen behind. */
  readonly maxQueuedBytes: number;
  /** Called once when the reader has fallen behind; the caller disconnects it. */
  readonly onOverflow: () => void;
}

/**
 * Sends a run's events to one reader: catch-up from the log, then live, exactly once and in
 * order, until `end` (resolves), the abort or the sink's refusal (resolves), or a gap nothing
 * fills (rejects with UnfillableGapError).
 *
 * Live events are checked against the chain (`prev`): a duplicate is skipped, a gap is filled
 * by reading (the fast stream, else the archive) before going on. A reader that is caught up
 * and whose sink has room gets each live event straight from the store's callback, with no
 * queue, promise or timer per event: with thousands of listeners this is the hot path.
 */
export async function followRun(options: FollowOptions): Promise<void> {
  const { log, runId, signal, sink } = options;
  let last = options.after;
  let finished = false; // `end` sent, or the sink is gone
  const live: RunEvent[] = [];
  let liveBytes = 0;
  let overflowed = false;
  /** The loop waits with nothing to do: a live event that continues the chain is sent at once. */
  let parked = false;
  let lastActivityMs = Date.now();
  let wake: (() => void) | undefined;
  const notify = () => {
    wake?.();
    wake = undefined;
  };
  const send = (events: readonly RunEvent[]): void => {
    const tail = events.at(-1);
    if (tail === undefined) return;
    if (!sink.send(events)) {
      finished = true;
      return;
    }
    last = tail.id;
    lastActivityMs = Date.now();
    if (tail.type === 'end') finished = true;
  };
  // Subscribe before catching up, so nothing slips between the read and the subscription.
  const unsubscribe = log.subscribe(runId, last, (event) => {
    if (overflowed || finished) return;
    if (parked && live.length === 0 && sink.hasRoom) {
      if (last !== null && compareEventIds(event.id, last) <= 0) return; // already sent
      if (continuesFrom(event, last)) {
        send([event]);
        if (finished) notify();
        return;
      }
    }
    live.push(event);
    liveBytes += sseFrame(event).length;
    if (liveBytes > options.maxQueuedBytes) {
      overflowed = true;
      options.onOverflow();
    }
    notify();
  });
  signal.addEventListener('abort', notify);
  let idleTimer: NodeJS.Timeout | undefined;
  try {
    let mustRead = true;
    let gapDelayMs = 0;
    let gapSinceMs = 0;
    while (!signal.aborted && !finished) {
      if (mustRead) {
        const batch = await log.read(runId, last, READ_BATCH);
        if (signal.aborted || finished) break;
        if (batch.length > 0) {
          await sendPaced(batch);
          gapDelayMs = 0;
          mustRead = batch.length === READ_BATCH;
          continue;
        }
        mustRead = false;
      }
      const next = takeLiveChain();
      if (next.length > 0) {
        await sendPaced(next);
        gapDelayMs = 0;
        continue;
      }
      if (live.length > 0) {
        // A gap: what is missing is in the store or on its way to the archive. Read now, and
        // if that is not enough, again after a growing pause (a batch in flight).
        mustRead = true;
        if (gapDelayMs === 0) gapSinceMs = Date.now();
        else if (Date.now() - gapSinceMs > GAP_GIVE_UP_MS) throw new UnfillableGapError(runId, last);
        if (gapDelayMs > 0) await pause(gapDelayMs);
        gapDelayMs = Math.min(GAP_RETRY_MAX_MS, Math.max(GAP_RETRY_MIN_MS, gapDelayMs * 2));
        continue;
      }
      parked = true;
      const woken = await waitIdle();
      parked = false;
      if (!woken && !signal.aborted && !finished) {
        lastActivityMs = Date.now(); // the next idle call is idleMs after this one
        mustRead = await options.onIdle();
      }
    }
  } finally {
    clearTimeout(idleTimer);
    signal.removeEventListener('abort', notify);
    unsubscribe();
  }

  /**
   * Sends events in writes of about SEND_CHUNK_CHARS, waiting for the sink to drain between
   * them: a catch-up of large events never becomes one huge string or socket buffer.
   */
  async function sendPaced(events: readonly RunEvent[]): Promise<void> {
    let start = 0;
    let chars = 0;
    for (let i = 0; i < events.length; i++) {
      chars += sseFrame(events[i] as RunEvent).length;
      if (chars < SEND_CHUNK_CHARS && i < events.length - 1) continue;
      send(events.slice(start, i + 1));
      if (finished || signal.aborted) return;
      start = i + 1;
      chars = 0;
      if (!sink.hasRoom) await sink.drained();
    }
  }

  /** The queued live events that continue the chain from `last` (duplicates dropped). */
  function takeLiveChain(): RunEvent[] {
    const chain: RunEvent[] = [];
    let tail = last;
    while (live.length > 0) {
      const event = live[0] as RunEvent;
      if (tail !== null && compareEventIds(event.id, tail) <= 0) {
        takeLive(); // already sent
        continue;
      }
      if (!continuesFrom(event, tail)) break;
      takeLive();
      chain.push(event);
      tail = event.id;
      if (event.type === 'end') break;
    }
    return chain;
  }

  function takeLive(): void {
    liveBytes -= sseFrame(live.shift() as RunEvent).length;
  }

  /**
   * Resolves true when woken (a queued live event, the end, the abort), false once `idleMs`
   * passed since the last event sent (by the loop or the store's callback) or idle call.
   */
  function waitIdle(): Promise<boolean> {
    if (live.length > 0 || signal.aborted || finished) return Promise.resolve(true);
    return new Promise((resolve) => {
      const arm = (ms: number) => {
        idleTimer = setTimeout(() => {
          const sinceMs = Date.now() - lastActivityMs;
          if (sinceMs < options.idleMs) return arm(options.idleMs - sinceMs);
          wake = undefined;
          resolve(false);
        }, ms);
      };
      arm(Math.max(0, options.idleMs - (Date.now() - lastActivityMs)));
      wake = () => {
        clearTimeout(idleTimer);
        resolve(true);
      };
    });
  }

  /** Resolves after `ms` (a gap being filled), or at once when woken. */
  function pause(ms: number): Promise<void> {
    if (signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        wake = undefined;
        resolve();
      }, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
