/**
 * Typed errors with a stable `code` and HTTP status. The HTTP error handler maps them to the
 * contract's `{"error": {"code", "message", ...details}}`; everything else becomes `internal`.
 */
export class AppError extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
    readonly details: Readonly<Record<string, unknown>> = {},
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class NotFoundError extends AppError {
  constructor(message = 'Nothing exists at this path, or it belongs to another account.') {
    super('not_found', 404, message);
  }
}

export class UnauthorizedError extends AppError {
  constructor(message = 'Send a valid key as "Authorization: Bearer <api key>".') {
    super('unauthorized', 401, message);
  }
}

export class InvalidRequestError extends AppError {
  constructor(message: string, field?: string) {
    super('invalid_request', 400, message, field === undefined ? {} : { field });
  }
}

export class InvalidJsonError extends AppError {
  constructor(message = 'The request body is not valid JSON.') {
    super('invalid_json', 400, message);
  }
}

export class UnsupportedMediaTypeError extends AppError {
  constructor(message: string) {
    super('unsupported_media_type', 415, message);
  }
}

export class PayloadTooLargeError extends AppError {
  constructor(limitBytes: number) {
    super('payload_too_large', 413, `The request body is larger than ${limitBytes} bytes.`, { limit: limitBytes });
  }
}

export class UnknownAgentError extends AppError {
  constructor(agent: string) {
    super('unknown_agent', 400, `No agent is named "${agent}"; GET /v1/agents lists them.`, { field: 'agent' });
  }
}

export class IdempotencyKeyReusedError extends AppError {
  constructor() {
    super(
      'idempotency_key_reused',
      422,
      'This Idempotency-Key was used within 24 h for a request with a different body; send a new key for a new request.',
    );
  }
}

export class AccountConcurrencyLimitError extends AppError {
  constructor(limit: number, active: number) {
    super(
      'account_concurrency_limit',
      429,
      `This account already has ${active} queued or running runs; its tier allows ${limit}. Retry when one ends.`,
      { limit, active },
    );
  }
}

export class SessionConcurrencyLimitError extends AppError {
  constructor(limit: number, active: number) {
    super(
      'session_concurrency_limit',
      429,
      `This session already has ${active} queued or running runs; at most ${limit} are allowed. Retry when one ends.`,
      { limit, active },
    );
  }
}

export class CapacityExhaustedError extends AppError {
  constructor(readonly retryAfterS: number) {
    super('capacity_exhausted', 503, 'This instance has no free run slot and its wait queue is full. Retry later.', {
      retry_after_s: retryAfterS,
    });
  }
}

export class ListenerLimitError extends AppError {
  constructor(
    limit: number,
    readonly retryAfterS: number,
  ) {
    super(
      'listener_limit',
      429,
      `This account already has ${limit} event streams open on this instance (SSE_MAX_LISTENERS_PER_ACCOUNT). Retry when one closes.`,
      { limit, retry_after_s: retryAfterS },
    );
  }
}

export class DependencyUnavailableError extends AppError {
  constructor(dependency: string, cause?: unknown) {
    super('dependency_unavailable', 503, `The ${dependency} is unavailable; nothing was changed. Retry shortly.`, {
      dependency,
    });
    if (cause !== undefined) this.cause = cause;
  }
}

export class DrainingError extends AppError {
  constructor() {
    super('draining', 503, 'This instance is shutting down; send the request to another instance.');
  }
}

/** A cluster worker could not gather every worker's metrics for /metrics. */
export class MetricsUnavailableError extends AppError {
  constructor(detail: string, cause?: unknown) {
    super('metrics_unavailable', 503, `The metrics of every worker could not be gathered (${detail}). Retry shortly.`);
    if (cause !== undefined) this.cause = cause;
  }
}

/** A configuration value that cannot be used; start-up stops with this message. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}
