import { AgentdError, connectionFailed, errorFromResponse } from './errors.js';
import { isRetryable, type RetryPolicy, retryDelayMs, sleep } from './retry.js';

/** Which credential a call sends: the account's API key, or the admin token (`/v1/admin/*`). */
export type Credential = 'apiKey' | 'adminToken';

export interface TransportOptions {
  /** agentd's base URL, e.g. `http://127.0.0.1:3000` (a path prefix is kept). */
  readonly url: string;
  readonly apiKey: string | undefined;
  readonly adminToken: string | undefined;
  readonly fetch: typeof fetch;
  readonly retry: RetryPolicy;
  /** Headers sent with every request (a User-Agent, a tracing header). */
  readonly headers: Readonly<Record<string, string>>;
}

export interface CallOptions {
  readonly method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  readonly path: string;
  readonly credential: Credential;
  readonly body?: unknown;
  readonly headers?: Readonly<Record<string, string>>;
  readonly signal?: AbortSignal;
  /**
   * Repeating it has no further effect (reads, cancel, a create with an Idempotency-Key), so it
   * is retried after a connection failure or a 5xx too; otherwise only after a 429 or 503.
   */
  readonly idempotent: boolean;
}

/** The one HTTP seam of the client: URLs, credentials, JSON, error answers and retries. */
export class Transport {
  private readonly base: string;

  constructor(private readonly options: TransportOptions) {
    this.base = options.url.replace(/\/+$/, '');
  }

  get retry(): RetryPolicy {
    return this.options.retry;
  }

  /** One request, retried as the policy allows; resolves with the answer's JSON, rejects with an AgentdError or the signal's reason. */
  async json<T>(call: CallOptions): Promise<T> {
    for (let attempt = 1; ; attempt += 1) {
      let error: AgentdError;
      try {
        const response = await this.send(call);
        if (response.ok) return await readJson<T>(response, call);
        error = await errorFromResponse(response);
      } catch (thrown) {
        if (call.signal?.aborted) throw call.signal.reason;
        if (thrown instanceof AgentdError && thrown.code !== 'connection_failed') throw thrown;
        error = thrown instanceof AgentdError ? thrown : connectionFailed(`${call.method} ${call.path}`, thrown);
      }
      await this.beforeRetry(error, attempt, call.idempotent, call.signal);
    }
  }

  /**
   * Waits before retry `attempt` of a failed call, or throws `error` when it is final, the
   * attempts are used up, or agentd asks to wait longer than the policy allows.
   */
  async beforeRetry(error: AgentdError, attempt: number, idempotent: boolean, signal: AbortSignal | undefined): Promise<void> {
    const policy = this.options.retry;
    if (!isRetryable(error, idempotent) || attempt >= policy.maxAttempts) throw error;
    if (error.retryAfterMs !== null && error.retryAfterMs > policy.maxRetryAfterMs) throw error;
    await sleep(retryDelayMs(policy, attempt, error.retryAfterMs), signal);
  }

  /** Sends one request, no retry; the caller reads the answer. */
  async send(call: Omit<CallOptions, 'idempotent'>): Promise<Response> {
    const headers: Record<string, string> = {
      ...this.options.headers,
      ...call.headers,
      authorization: `Bearer ${this.credential(call.credential)}`,
    };
    let body: string | undefined;
    if (call.body !== undefined) {
      body = JSON.stringify(call.body);
      headers['content-type'] = 'application/json';
    }
    // Called unbound: a browser's fetch refuses any `this` but the window (or none).
    const fetchImpl = this.options.fetch;
    return fetchImpl(`${this.base}${call.path}`, { method: call.method, headers, body, signal: call.signal });
  }

  private credential(which: Credential): string {
    const value = which === 'apiKey' ? this.options.apiKey : this.options.adminToken;
    if (value === undefined || value === '') {
      const [name, route] = which === 'apiKey' ? ['an API key (apiKey)', '/v1'] : ['the admin token (adminToken)', '/v1/admin'];
      throw new AgentdError('missing_credentials', `Calls to ${route} need ${name}; pass it to createClient.`);
    }
    return value;
  }
}

async function readJson<T>(response: Response, call: CallOptions): Promise<T> {
  let text: string;
  try {
    text = await response.text();
  } catch (error) {
    throw connectionFailed(`${call.method} ${call.path}`, error);
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new AgentdError(
      'invalid_response',
      `${call.method} ${call.path} answered ${response.status} with a body that is not JSON.`,
      response.status,
    );
  }
}

/**
 * A random UUID for an Idempotency-Key. `crypto.randomUUID` exists only in secure contexts in
 * browsers (https, localhost); `getRandomValues` everywhere.
 */
export function newIdempotencyKey(): string {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x40;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
