import type { AttemptRecord } from '../db/webhook-repository.js';
import type { SendResult } from './webhook-sender.js';

/** The retry schedule: WEBHOOK_MAX_ATTEMPTS, WEBHOOK_MAX_AGE_MS, WEBHOOK_RETRY_BASE_MS. */
export interface RetrySchedule {
  readonly maxAttempts: number;
  readonly maxAgeMs: number;
  readonly retryBaseMs: number;
}

/** Longest pause between two attempts (ms), Retry-After included. */
export const RETRY_MAX_MS = 60 * 60 * 1000;

/**
 * The pause after failed attempt `attempt` (from 1): the base doubled per attempt, at most an
 * hour, jittered to between half of it and all of it (`random` in [0, 1)), so receivers that
 * came back are not met by every delivery at once; a longer Retry-After wins.
 */
export function retryDelayMs(attempt: number, schedule: RetrySchedule, retryAfterMs: number | null, random: number): number {
  const full = Math.min(RETRY_MAX_MS, schedule.retryBaseMs * 2 ** Math.min(attempt - 1, 40));
  const jittered = full / 2 + (full / 2) * random;
  return Math.round(Math.max(jittered, Math.min(RETRY_MAX_MS, retryAfterMs ?? 0)));
}

/** Whether a status means "do not send this again": a 4xx other than 408 (timeout) and 429 (slow down). */
function isFinalRefusal(status: number): boolean {
  return status >= 400 && status < 500 && status !== 408 && status !== 429;
}

/**
 * What attempt `attempt` of a delivery, `ageMs` after its run ended, comes to: 2xx delivers;
 * a final refusal or a refused target fails it for good; anything else (5xx, 408, 429, 3xx, no
 * answer) is retried, unless the attempts or the time allowed would run out first.
 */
export function attemptOutcome(
  result: SendResult,
  attempt: number,
  ageMs: number,
  schedule: RetrySchedule,
  random: number = Math.random(),
): AttemptRecord {
  const lastStatus = result.kind === 'answered' ? result.status : null;
  if (result.kind === 'answered' && result.status >= 200 && result.status < 300) return { state: 'delivered', lastStatus, lastError: null };
  const lastError =
    result.kind === 'answered'
      ? `the receiver answered ${result.status}`
      : result.kind === 'refused'
        ? `refused: ${result.reason}`
        : `no answer: ${result.reason}`;
  if (result.kind === 'refused' || (result.kind === 'answered' && isFinalRefusal(result.status))) {
    return { state: 'failed', lastStatus, lastError };
  }
  const retryInMs = retryDelayMs(attempt, schedule, result.kind === 'answered' ? result.retryAfterMs : null, random);
  if (attempt >= schedule.maxAttempts) return { state: 'failed', lastStatus, lastError: `${lastError}; gave up after ${attempt} attempts` };
  if (ageMs + retryInMs > schedule.maxAgeMs) {
    return { state: 'failed', lastStatus, lastError: `${lastError}; gave up: the next attempt would come after WEBHOOK_MAX_AGE_MS` };
  }
  return { state: 'pending', lastStatus, lastError, retryInMs };
}
