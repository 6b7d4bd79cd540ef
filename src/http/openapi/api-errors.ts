import { z } from 'zod';

/**
 * Every error code the API answers, with its HTTP status: the OpenAPI document lists each
 * route's codes by status. The codes are thrown as typed errors (`domain/errors.ts` and a few
 * in `http/`); a unit test holds this table to their statuses.
 */
export const API_ERRORS = {
  invalid_request: {
    status: 400,
    details: ['field'],
    description: 'a field, query parameter or header failed validation (`field` names it)',
  },
  invalid_json: { status: 400, details: [], description: 'the body is not JSON agentd can keep (malformed, a lone surrogate, too deep)' },
  unknown_agent: { status: 400, details: ['field'], description: 'no agent has that name' },
  unauthorized: { status: 401, details: [], description: 'missing or wrong credentials (repeated failures are slowed)' },
  not_found: { status: 404, details: [], description: "nothing here, another account's, or a malformed id" },
  payload_too_large: { status: 413, details: ['limit'], description: 'the body is larger than MAX_BODY_BYTES (`limit`)' },
  unsupported_media_type: { status: 415, details: [], description: 'a compressed body (Content-Encoding)' },
  idempotency_key_reused: { status: 422, details: [], description: 'the Idempotency-Key was used within 24 h with another body' },
  account_concurrency_limit: {
    status: 429,
    details: ['limit', 'active', 'retry_after_s'],
    description: 'the account has as many queued+running runs as its tier allows (`limit`, `active`)',
  },
  session_concurrency_limit: {
    status: 429,
    details: ['limit', 'active', 'retry_after_s'],
    description: 'the session has SESSION_MAX_INFLIGHT queued+running runs (`limit`, `active`)',
  },
  listener_limit: {
    status: 429,
    details: ['limit', 'retry_after_s'],
    description: 'the account has SSE_MAX_LISTENERS_PER_ACCOUNT streams open on this instance',
  },
  internal: { status: 500, details: [], description: "a failure on the server's side (logged; no detail is shown)" },
  stream_tokens_disabled: {
    status: 501,
    details: [],
    description: 'the server has neither STREAM_TOKEN_SECRET nor ADMIN_TOKEN to sign stream tokens',
  },
  capacity_exhausted: { status: 503, details: ['retry_after_s'], description: "this instance's run slots and wait queue are full" },
  draining: { status: 503, details: ['retry_after_s'], description: 'this instance is shutting down' },
  dependency_unavailable: {
    status: 503,
    details: ['dependency', 'retry_after_s'],
    description: 'the database or the event store cannot answer; nothing was changed',
  },
  metrics_unavailable: { status: 503, details: ['retry_after_s'], description: "a cluster worker's metrics could not be gathered" },
} as const satisfies Record<string, { status: number; details: readonly ErrorDetail[]; description: string }>;

export type ApiErrorCode = keyof typeof API_ERRORS;

/** Retry-After (seconds) of a 429 or 503 whose error names no figure of its own, and of /readyz. */
export const DEFAULT_RETRY_AFTER_S = 1;

/** Statuses whose answers carry Retry-After (seconds), as the contract promises. */
const RETRY_STATUSES: ReadonlySet<number> = new Set([429, 503]);

/** The detail fields an error body may carry besides `code` and `message`. */
const DETAILS = {
  field: z.string().meta({ description: 'The field, query parameter or header at fault.' }),
  limit: z.number().int(),
  active: z.number().int(),
  retry_after_s: z.number().int().meta({ description: 'As the Retry-After header.' }),
  dependency: z.string(),
} as const;
type ErrorDetail = keyof typeof DETAILS;

/** The contract's error body, `{"error": {"code", "message", ...details}}`, with the codes (and their details) a response may hold. */
export function errorBody(codes: readonly [ApiErrorCode, ...ApiErrorCode[]]) {
  const details = new Set<ErrorDetail>(codes.flatMap((code) => API_ERRORS[code].details));
  return z.object({
    error: z.object({
      code: z.enum(codes),
      message: z.string().meta({ description: 'One sentence a person can act on.' }),
      ...Object.fromEntries([...details].map((name) => [name, DETAILS[name].optional()])),
    }),
  });
}

/** The codes grouped by HTTP status, in status order. */
export function byStatus(codes: Iterable<ApiErrorCode>): Map<number, [ApiErrorCode, ...ApiErrorCode[]]> {
  const groups = new Map<number, [ApiErrorCode, ...ApiErrorCode[]]>();
  for (const code of new Set(codes)) {
    const { status } = API_ERRORS[code];
    const group = groups.get(status);
    if (group === undefined) groups.set(status, [code]);
    else group.push(code);
  }
  return new Map([...groups].sort(([a], [b]) => a - b));
}

export const carriesRetryAfter = (status: number): boolean => RETRY_STATUSES.has(status);
