import { abortPromise } from './abort-promise.js';
import type { Acquisition, FairSemaphore, Permit, Waiter } from './fair-semaphore.js';

/**
 * Takes a permit of `semaphore` for `holder`, waiting in `group`'s queue if need be. Rejects
 * with QueueFullError / QueueTimeoutError from the semaphore, or with the signal's reason
 * when it aborts first (see `awaitGrant`).
 */
export async function acquirePermit(semaphore: FairSemaphore, holder: string, group: string, signal: AbortSignal): Promise<Permit> {
  signal.throwIfAborted();
  const acquisition = semaphore.acquire(holder, group);
  return acquisition.kind === 'acquired' ? acquisition.permit : awaitGrant(acquisition.waiter, signal);
}

/**
 * Waits for a queued place to be granted. If the signal aborts first (or the wait times
 * out) the place is given up, and a permit granted in the same instant is released, so
 * nothing is ever held by a caller that gave up.
 */
export async function awaitGrant(waiter: Waiter, signal: AbortSignal): Promise<Permit> {
  const aborted = abortPromise(signal);
  try {
    return await Promise.race([waiter.granted, aborted.promise]);
  } catch (error) {
    giveUp(waiter);
    throw error;
  } finally {
    aborted.dispose();
  }
}

/** Gives back whatever an acquisition holds or waits for. */
export function releaseAcquisition(acquisition: Acquisition): void {
  if (acquisition.kind === 'acquired') acquisition.permit.release();
  else giveUp(acquisition.waiter);
}

function giveUp(waiter: Waiter): void {
  if (waiter.cancel()) {
    waiter.granted.catch(() => undefined); // rejected by cancel(): expected
  } else {
    waiter.granted.then(
      (permit) => permit.release(), // granted just as we gave up: hand it straight back
      () => undefined, // it timed out: nothing is held
    );
  }
}
