import { type LogSafeMessage, RunFailure } from '../domain/index.js';

export interface ProviderErrorDetails {
  /** The provider's HTTP status, when it answered. */
  readonly status?: number;
  /** True when nothing was streamed yet and the failure is worth another attempt (429, 5xx, connection failure). */
  readonly retryable?: boolean;
  /** What the provider asked us to wait (Retry-After / retry-after-ms), in ms. */
  readonly retryAfterMs?: number;
  /** `detail` without the provider's own text (which may quote the run's messages), for logs; default `detail`. */
  readonly logDetail?: string;
}

/**
 * A provider failed the request; the run ends `failed` with `provider_error` and this message.
 * Logs show `logMessage`, which holds none of the provider's text.
 */
export class ProviderError extends RunFailure implements LogSafeMessage {
  readonly status: number | undefined;
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;
  readonly logDetail: string;
  readonly logMessage: string;

  /** `detail` completes the sentence `Provider "<name>" …`. */
  constructor(
    readonly provider: string,
    readonly detail: string,
    details: ProviderErrorDetails = {},
  ) {
    super('provider_error', `Provider "${provider}" ${detail}.`);
    this.status = details.status;
    this.retryable = details.retryable ?? false;
    this.retryAfterMs = details.retryAfterMs;
    this.logDetail = details.logDetail ?? detail;
    this.logMessage = `Provider "${provider}" ${this.logDetail}.`;
  }
}

/** A provider (or the wait for one of its permits) took too long; the run ends `failed` with `provider_timeout`. */
export class ProviderTimeoutError extends RunFailure {
  /** `detail` completes the sentence `Provider "<name>" …`. */
  constructor(
    readonly provider: string,
    readonly detail: string,
  ) {
    super('provider_timeout', `Provider "${provider}" ${detail}.`);
  }
}

/** The run's model cannot be served by any configured provider (or no routing rule matches). */
export class ModelRoutingError extends RunFailure implements LogSafeMessage {
  /** `logMessage` without the model the request named. */
  constructor(
    message: string,
    readonly logMessage = message,
  ) {
    super('provider_error', message);
  }
}
