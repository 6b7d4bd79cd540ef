import { compareEventIds, type EventId } from './event-id.js';
import { continuesFrom, type EventLog } from './event-log.js';
import { sseFrame } from './sse-frame.js';
import type { RunEvent } from './run-event.js';

const READ_BATCH = 500;
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

export interface FollowOptions {
  readonly log: EventLog;
  readonly runId: string;
  /** Deliver strictly after this id (null: from the first event). */
  readonly after: EventId | null;
  /** Ends the follow (client gone). */
  readonly signal: AbortSignal;
  /**
   * Called while nothing new arrives, every `idleMs` (heartbeats, end-of-run checks);
   * returning true makes the follower read the log again.
   */
  readonly onIdle: () => Promise<boolean> | boolean;
  readonly idleMs: number;
  /** Live events waiting for this reader beyond this many bytes mean it has fallen behind. */
  readonly maxQueuedBytes: number;
  /** Called once when the reader has fallen behind; the caller disconnects it. */
  readonly onOverflow: () => void;
}

/**
 * A run's events for one reader: catch-up from the log, then live, exactly once and in
 * order, until `end`. Live events are checked against the chain (`prev`): a duplicate is
 * skipped, a gap is filled by reading (the fast stream, else the archive) before going on.
 */
export async function* followRun(options: FollowOptions): AsyncGenerator<RunEvent, void, undefined> {
  const { log, runId, signal } = options;
  let last = options.after;
  const live: RunEvent[] = [];
  let liveBytes = 0;
  let overflowed = false;
  let wake: (() => void) | undefined;
  const notify = () => {
    wake?.();
    wake = undefined;
  };
  // Subscribe before catching up, so nothing slips between the read and the subscription.
  const unsubscribe = log.subscribe(runId, last, (event) => {
    if (overflowed) return;
    live.push(event);
    liveBytes += sseFrame(event).length;
    if (liveBytes > options.maxQueuedBytes) {
      overflowed = true;
      options.onOverflow();
    }
    notify();
  });
  const takeLive = (): RunEvent => {
    const event = live.shift() as RunEvent;
    liveBytes -= sseFrame(event).length;
    return event;
  };
  signal.addEventListener('abort', notify);
  // One idle timer per reader, re-armed on each wait (not a new timer per event).
  let idle: ((woken: boolean) => void) | undefined;
  const idleTimer = setTimeout(() => idle?.(false), options.idleMs);
  try {
    let mustRead = true;
    let gapDelayMs = 0;
    let gapSinceMs = 0;
    while (!signal.aborted) {
      if (mustRead) {
        const batch = await log.read(runId, last, READ_BATCH);
        for (const event of batch) {
          yield event;
          last = event.id;
          if (event.type === 'end') return;
        }
        if (batch.length > 0) {
          gapDelayMs = 0;
          mustRead = batch.length === READ_BATCH;
          continue;
        }
        mustRead = false;
      }
      while (live.length > 0 && !mustRead) {
        const event = live[0] as RunEvent;
        if (last !== null && compareEventIds(event.id, last) <= 0) {
          takeLive(); // already delivered
          continue;
        }
        if (!continuesFrom(event, last)) {
          mustRead = true; // a gap: what is missing is in the store or on its way to the archive
          break;
        }
        takeLive();
        yield event;
        last = event.id;
        gapDelayMs = 0;
        if (event.type === 'end') return;
      }
      if (mustRead) {
        // The missing events are not readable yet (a batch in flight): try again shortly.
        if (gapDelayMs === 0) gapSinceMs = Date.now();
        else if (Date.now() - gapSinceMs > GAP_GIVE_UP_MS) throw new UnfillableGapError(runId, last);
        if (gapDelayMs > 0) await pause(gapDelayMs);
        gapDelayMs = Math.min(GAP_RETRY_MAX_MS, Math.max(GAP_RETRY_MIN_MS, gapDelayMs * 2));
        continue;
      }
      const woken = await waitIdle();
      if (!woken && !signal.aborted) mustRead = await options.onIdle();
    }
  } finally {
    clearTimeout(idleTimer);
    signal.removeEventListener('abort', notify);
    unsubscribe();
  }

  /** Resolves true when woken by a live event or the abort, false after `options.idleMs`. */
  function waitIdle(): Promise<boolean> {
    if (live.length > 0 || signal.aborted) return Promise.resolve(true);
    idleTimer.refresh();
    return new Promise((resolve) => {
      idle = (woken) => {
        idle = undefined;
        wake = undefined;
        resolve(woken);
      };
      wake = () => idle?.(true);
    });
  }

  /** Resolves after `ms` (a gap being filled), or at once when the reader is aborted. */
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
