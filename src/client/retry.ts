import type { AgentdError } from './errors.js';

/** How the client retries: bounded, with jittered exponential backoff, honouring Retry-After. */
export interface RetryPolicy {
  /**
   * Attempts in a row that may fail before the last error is thrown, the first one included
   * (an event stream that delivered an event starts counting again); default 6. 1: no retry.
   */
  readonly maxAttempts: number;
  /** The backoff before the first retry, doubled for each further one, in ms; default 250. */
  readonly initialDelayMs: number;
  /** The longest backoff, in ms; default 5000. */
  readonly maxDelayMs: number;
  /** A Retry-After longer than this is not waited for: the error is thrown at once, in ms; default 60000. */
  readonly maxRetryAfterMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = Object.freeze({
  maxAttempts: 6,
  initialDelayMs: 250,
  maxDelayMs: 5_000,
  maxRetryAfterMs: 60_000,
});

/**
 * The wait before retry number `retry` (1 for the first), in ms: agentd's Retry-After when it
 * sent one (it knows when to come back), else the exponential backoff with "equal jitter": a
 * random point in its upper half, so clients cut off together do not come back together and
 * no retry comes at once.
 */
export function retryDelayMs(policy: RetryPolicy, retry: number, retryAfterMs: number | null, random: () => number = Math.random): number {
  if (retryAfterMs !== null) return retryAfterMs;
  const ceiling = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** Math.min(retry - 1, 30));
  return ceiling / 2 + random() * (ceiling / 2);
}

/** Refusals that depend on the caller's own runs: retrying blindly would only wait for them. */
const CALLERS_OWN_LIMITS = new Set(['account_concurrency_limit', 'session_concurrency_limit']);

/**
 * Whether an error answer may be retried: 408, 429 (except the account and session limits,
 * which are the caller's to handle) and 5xx; for a request that is not idempotent only the
 * refusals that changed nothing (429, 503). Any other 4xx is final.
 */
export function isRetryable(error: AgentdError, idempotent: boolean): boolean {
  const status = error.status;
  if (status === null) return idempotent && error.code === 'connection_failed';
  if (status === 429) return !CALLERS_OWN_LIMITS.has(error.code);
  if (!idempotent) return status === 503;
  return status === 408 || status >= 500;
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason as Error);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
