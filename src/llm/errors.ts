import { RunFailure } from '../domain/index.js';

export interface ProviderErrorDetails {
  /** The provider's HTTP status, when it answered. */
  readonly status?: number;
  /** True when nothing was streamed yet and the failure is worth another attempt (429, 5xx, connection failure). */
  readonly retryable?: boolean;
  /** What the provider asked us to wait (Retry-After / retry-after-ms), in ms. */
  readonly retryAfterMs?: number;
}

/** A provider failed the request; the run ends `failed` with `provider_error` and this message. */
export class ProviderError extends RunFailure {
  readonly status: number | undefined;
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;

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
export class ModelRoutingError extends RunFailure {
  constructor(message: string) {
    super('provider_error', message);
  }
}
