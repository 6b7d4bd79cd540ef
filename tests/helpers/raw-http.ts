import { request as httpRequest } from 'node:http';
import type { JsonResponse } from './http.js';

export interface RawRequestOptions {
  readonly method: string;
  readonly path: string;
  readonly headers?: Record<string, string>;
  /** Sent as-is: no JSON encoding, no content-type added. */
  readonly body?: string | Buffer;
  /**
   * The client's address (any of 127.0.0.0/8 on Linux): the server's 401 slow-down is kept per
   * address, so a test that sends 401s on purpose can keep them from slowing the others.
   */
  readonly localAddress?: string;
}

/**
 * One HTTP request over node:http, for what fetch will not send: any Content-Encoding with
 * any body, bytes that are not UTF-8, a chosen source address. A fresh connection each time.
 */
export function rawRequest<T = any>(baseUrl: string, options: RawRequestOptions): Promise<JsonResponse<T>> {
  const url = new URL(options.path, baseUrl);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        path: `${url.pathname}${url.search}`,
        method: options.method,
        headers: options.headers,
        localAddress: options.localAddress,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown;
          try {
            body = text === '' ? undefined : JSON.parse(text);
          } catch {
            body = undefined; // not JSON: callers read `text`
          }
          const headers = new Headers();
          for (const [name, value] of Object.entries(res.headers)) if (typeof value === 'string') headers.set(name, value);
          resolve({ status: res.statusCode ?? 0, headers, body: body as T, text });
        });
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}
