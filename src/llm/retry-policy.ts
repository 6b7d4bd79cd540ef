/** First backoff ceiling; the n-th retry waits a random time below min(cap, base × 2^n). */
export const BACKOFF_BASE_MS = 500;
export const BACKOFF_CAP_MS = 10_000;

/** Reads of response headers, as `Headers` offers them. */
export interface HeaderReader {
  get(name: string): string | null;
}

/**
 * How long the provider asked us to wait, in ms: `retry-after-ms` (OpenAI), else `Retry-After`
 * as seconds or an HTTP date. Undefined when absent or unreadable.
 */
export function parseRetryAfterMs(headers: HeaderReader, nowMs: number): number | undefined {
  const ms = headers.get('retry-after-ms')?.trim();
  if (ms !== undefined && /^\d+(\.\d+)?$/.test(ms)) return Math.ceil(Number(ms));
  const value = headers.get('retry-after')?.trim();
  if (value === undefined || value === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(value)) return Math.ceil(Number(value) * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - nowMs);
}

export interface RetryInput {
  /** Retries already made (0 before the first retry). */
  readonly retriesSoFar: number;
  readonly maxRetries: number;
  readonly retryAfterMs: number | undefined;
  readonly nowMs: number;
  /** Epoch ms by which the request must be done; a retry that could not start before it is not made. */
  readonly deadlineMs: number;
  /** A uniform number in [0, 1). */
  readonly random: () => number;
  readonly baseMs?: number;
  readonly capMs?: number;
}

export type RetryDecision =
  { readonly retry: true; readonly delayMs: number } | { readonly retry: false; readonly reason: 'exhausted' | 'deadline' };

/**
 * Exponential backoff with full jitter, never shorter than what the provider asked
 * (Retry-After), bounded by the retry count and by the deadline.
 */
export function decideRetry(input: RetryInput): RetryDecision {
  if (input.retriesSoFar >= input.maxRetries) return { retry: false, reason: 'exhausted' };
  const ceilingMs = Math.min(input.capMs ?? BACKOFF_CAP_MS, (input.baseMs ?? BACKOFF_BASE_MS) * 2 ** input.retriesSoFar);
  const delayMs = Math.max(input.retryAfterMs ?? 0, Math.floor(input.random() * ceilingMs));
  if (input.nowMs + delayMs >= input.deadlineMs) return { retry: false, reason: 'deadline' };
  return { retry: true, delayMs };
}
