import http from 'node:http';

export interface HttpResult {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

/** A keep-alive agent for `sockets` concurrent requests to loopback servers. */
export function keepAliveAgent(sockets: number): http.Agent {
  return new http.Agent({ keepAlive: true, maxSockets: sockets, maxFreeSockets: sockets });
}

/** One HTTP request with a JSON body (if any) on raw node:http; rejects after `timeoutMs`. */
export function request(
  agent: http.Agent,
  method: string,
  url: string,
  options: { token?: string; body?: unknown; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
    const headers: Record<string, string> = { ...options.headers };
    if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
    if (payload !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(Buffer.byteLength(payload));
    }
    const req = http.request(url, { method, agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(options.timeoutMs ?? 30_000, () => req.destroy(new Error(`${method} ${url} timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** Like `request`, but parses a JSON body and throws unless the status is `expect`. */
export async function requestJson<T = Record<string, unknown>>(
  agent: http.Agent,
  method: string,
  url: string,
  expect: number,
  options: { token?: string; body?: unknown; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<T> {
  const result = await request(agent, method, url, options);
  if (result.status !== expect) throw new Error(`${method} ${url}: expected ${expect}, got ${result.status}: ${result.body.slice(0, 300)}`);
  return JSON.parse(result.body) as T;
}

/** Runs `count` tasks with at most `concurrency` at once; each gets its index and its worker number. */
export async function runPool(count: number, concurrency: number, task: (index: number, worker: number) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(concurrency, count) }, async (_, worker) => {
    while (next < count) {
      const index = next;
      next += 1;
      await task(index, worker);
    }
  });
  await Promise.all(workers);
}
