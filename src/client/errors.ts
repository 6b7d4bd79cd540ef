import type { ErrorView } from '../domain/wire.js';

/**
 * Codes the client itself gives errors that agentd did not answer with:
 * - `connection_failed`: no answer (network error, refused, reset, a stream that went silent)
 *   after the retries the policy allows;
 * - `invalid_response`: an answer that is not the contract's (not JSON, no event id);
 * - `missing_credentials`: the call needs an API key or admin token the client was not given.
 * Every other code is the contract's, as agentd answered it (`unauthorized`, `not_found`,
 * `account_concurrency_limit`, …).
 */
export type ClientErrorCode = 'connection_failed' | 'invalid_response' | 'missing_credentials';

/**
 * An error of a call to agentd: the contract's `{code, message}` (and its detail fields), the
 * HTTP status (null when there was no answer), and how long agentd asked to wait before a retry.
 * Recognise errors by `code`, never by message.
 */
export class AgentdError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number | null = null,
    /** The error's other fields: `limit`, `active`, `retry_after_s`, `field`, … */
    readonly details: Readonly<Record<string, unknown>> = {},
    /** From the Retry-After header (or `retry_after_s`), in ms; null when the answer had none. */
    readonly retryAfterMs: number | null = null,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'AgentdError';
  }
}

/** An error answer (any non-2xx) as an AgentdError; an answer that is not the contract's shape gets a code from its status. */
export async function errorFromResponse(response: Response): Promise<AgentdError> {
  const retryAfterMs = retryAfterOf(response);
  let text = '';
  try {
    text = await response.text();
  } catch {
    text = ''; // the body was cut off: the status alone describes the error
  }
  const body = parseErrorBody(text);
  if (body === null) {
    return new AgentdError(
      `http_${response.status}`,
      `agentd answered ${response.status} without an error body.`,
      response.status,
      {},
      retryAfterMs,
    );
  }
  const { code, message, ...details } = body.error;
  const fromBody = typeof details.retry_after_s === 'number' ? details.retry_after_s * 1000 : null;
  return new AgentdError(code, message, response.status, details, retryAfterMs ?? fromBody);
}

function parseErrorBody(text: string): ErrorView | null {
  try {
    const parsed: unknown = JSON.parse(text);
    const error = (parsed as { error?: unknown } | null)?.error as { code?: unknown; message?: unknown } | undefined;
    return typeof error?.code === 'string' && typeof error.message === 'string' ? (parsed as ErrorView) : null;
  } catch {
    return null; // not JSON (a proxy's page): described by its status
  }
}

/** The Retry-After header in ms: delay-seconds or an HTTP date; null when absent or unreadable. */
export function retryAfterOf(response: Response, nowMs: number = Date.now()): number | null {
  const header = response.headers.get('retry-after')?.trim();
  if (header === undefined || header === '') return null;
  if (/^\d+$/.test(header)) return Number(header) * 1000;
  const date = Date.parse(header);
  return Number.isNaN(date) ? null : Math.max(0, date - nowMs);
}

/** The error of a request that got no answer. */
export function connectionFailed(what: string, cause: unknown): AgentdError {
  const reason = cause instanceof Error ? (cause.cause instanceof Error ? cause.cause.message : cause.message) : String(cause);
  return new AgentdError('connection_failed', `${what} got no answer from agentd: ${reason}.`, null, {}, null, { cause });
}
