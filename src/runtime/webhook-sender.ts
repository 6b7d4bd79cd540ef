import { request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { bareHost, resolveTarget } from './webhook-target.js';

/** What one attempt to POST a delivery got. */
export type SendResult =
  | { readonly kind: 'answered'; readonly status: number; readonly retryAfterMs: number | null }
  /** The target is not one agentd calls (a non-public address); retrying would not change that. */
  | { readonly kind: 'refused'; readonly reason: string }
  /** No answer: DNS, connection, TLS or the timeout. */
  | { readonly kind: 'unanswered'; readonly reason: string };

export interface SendOptions {
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  /** The whole attempt (DNS, connect, TLS, the status line) gets this long (ms). */
  readonly timeoutMs: number;
  readonly allowPrivate: boolean;
}

/** Longest Retry-After honoured (ms): the retry schedule's own cap. */
const RETRY_AFTER_MAX_MS = 60 * 60 * 1000;

function retryAfterMs(response: IncomingMessage): number | null {
  const header = response.headers['retry-after'];
  if (header === undefined || !/^\d+$/.test(header.trim())) return null; // an HTTP date is rare from receivers: use the backoff
  return Math.min(RETRY_AFTER_MAX_MS, Number(header.trim()) * 1000);
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === 'string' ? `${code}: ${error.message}` : error.message;
  }
  return String(error);
}

/**
 * POSTs `body` to `url` once: resolves the host once, refuses non-public addresses unless
 * allowed, and connects to exactly that address (TLS still verifies the URL's host name), so
 * a DNS answer that changes between the check and the connection cannot redirect the request.
 * Redirects are not followed. Resolves with the answer's status as soon as it arrives (the
 * body is discarded); never rejects.
 */
export async function sendWebhook(url: URL, options: SendOptions): Promise<SendResult> {
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), options.timeoutMs);
  const timedOut = new Promise<SendResult>((resolve) =>
    deadline.signal.addEventListener('abort', () => resolve({ kind: 'unanswered', reason: `no answer within ${options.timeoutMs} ms` }), {
      once: true,
    }),
  );
  try {
    return await Promise.race([attempt(url, options, deadline.signal), timedOut]);
  } finally {
    clearTimeout(timer);
    deadline.abort(); // a request still in flight (the deadline won, or DNS was slow) is destroyed
  }
}

async function attempt(url: URL, options: SendOptions, signal: AbortSignal): Promise<SendResult> {
  let target;
  try {
    target = await resolveTarget(url, options.allowPrivate);
  } catch (error) {
    return { kind: 'unanswered', reason: `DNS lookup failed (${describe(error)})` };
  }
  if (target.kind === 'refused') return target;
  if (signal.aborted) return { kind: 'unanswered', reason: 'aborted' };
  const host = bareHost(url);
  const secure = url.protocol === 'https:';
  const requestOptions: RequestOptions & { servername?: string } = {
    method: 'POST',
    host: target.address,
    family: target.family,
    port: url.port === '' ? (secure ? 443 : 80) : Number(url.port),
    path: `${url.pathname}${url.search}`,
    headers: { ...options.headers, host: url.host, 'content-length': String(Buffer.byteLength(options.body)) },
    agent: false,
    signal,
    // TLS names the URL's host (SNI) and checks the certificate against it, not against the address.
    ...(secure && isIP(host) === 0 ? { servername: host } : {}),
  };
  return new Promise<SendResult>((resolve) => {
    const req = (secure ? httpsRequest : httpRequest)(requestOptions, (response) => {
      resolve({ kind: 'answered', status: response.statusCode ?? 0, retryAfterMs: retryAfterMs(response) });
      response.resume(); // read and dropped: only the status matters
      response.on('error', () => undefined); // the answer is already taken; a reset while draining changes nothing
    });
    req.on('error', (error) => resolve({ kind: 'unanswered', reason: describe(error) }));
    req.end(options.body);
  });
}
