import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';

/** A listener on a raw socket: it reads the response head (and an error's body), then never reads again. */
export interface RawListener {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  /** The JSON body of a non-200 answer. */
  readonly body: any;
  readonly socket: Socket;
  close(): void;
}

/**
 * Sends `GET <path>` over its own socket and resolves once the response head has arrived. A 200
 * (an event stream) leaves the socket paused: the client stops reading, as a stalled client
 * does, and the server's writes pile up in the kernel and then in the server. Any other status
 * is read to its end.
 */
export async function openRawListener(baseUrl: string, path: string, token: string, method = 'GET', body?: unknown): Promise<RawListener> {
  const { hostname, port } = new URL(baseUrl);
  const socket = connect({ host: hostname, port: Number(port) });
  await once(socket, 'connect');
  const payload = body === undefined ? '' : JSON.stringify(body);
  socket.write(
    `${method} ${path} HTTP/1.1\r\nHost: ${hostname}\r\nAuthorization: Bearer ${token}\r\n` +
      (body === undefined ? '' : `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(payload)}\r\n`) +
      `\r\n${payload}`,
  );
  let received = Buffer.alloc(0);
  let headEnd = -1;
  while (headEnd < 0) {
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    received = Buffer.concat([received, chunk]);
    headEnd = received.indexOf('\r\n\r\n');
  }
  socket.pause(); // a 200 is never read further
  const lines = received.subarray(0, headEnd).toString('latin1').split('\r\n');
  const status = Number(lines[0]?.split(' ')[1]);
  const headers = Object.fromEntries(
    lines.slice(1).map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]),
  );
  let parsed: unknown;
  if (status !== 200) {
    const length = Number(headers['content-length'] ?? 0);
    let rest = received.subarray(headEnd + 4);
    socket.resume();
    while (rest.length < length) rest = Buffer.concat([rest, ((await once(socket, 'data')) as [Buffer])[0]]);
    parsed = length > 0 ? JSON.parse(rest.subarray(0, length).toString('utf8')) : undefined;
  }
  socket.on('error', () => undefined); // the server may cut a stalled listener off; the test looks at what it sees
  return { status, headers, body: parsed, socket, close: () => socket.destroy() };
}

/**
 * Follows a run's events the way a client that resumes does: counts `token` events and, when the
 * server cuts it off (a listener that falls behind is disconnected), reconnects with
 * Last-Event-ID. Resolves with the `end` event's data, or undefined once `signal` aborts.
 */
export async function countTokens(
  url: string,
  token: string,
  onToken: () => void,
  signal: AbortSignal,
): Promise<{ endData: unknown; reconnects: number } | undefined> {
  let lastId: string | undefined;
  let reconnects = -1;
  // Connections refused in a row: the server is gone (a failed test stopped it), so stop
  // rather than spin, adding an abort listener a try.
  let refused = 0;
  while (!signal.aborted) {
    reconnects += 1;
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    if (lastId !== undefined) headers['last-event-id'] = lastId;
    let connected = false;
    try {
      const response = await fetch(url, { headers, signal });
      connected = true;
      refused = 0;
      if (response.status !== 200) throw new Error(`status ${response.status}: ${await response.text()}`);
      const reader = (response.body as ReadableStream<Uint8Array>).getReader();
      const decoder = new TextDecoder();
      let buffer = '';
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        for (let at = buffer.indexOf('\n\n'); at >= 0; at = buffer.indexOf('\n\n')) {
          const frame = buffer.slice(0, at);
          buffer = buffer.slice(at + 2);
          const match = /^id: (\S+)\nevent: (\w+)\ndata: (.*)$/s.exec(frame);
          if (match === null) continue; // a `: ping`
          lastId = match[1];
          if (match[2] === 'token') onToken();
          if (match[2] === 'end') return { endData: JSON.parse(match[3] as string) as unknown, reconnects };
        }
      }
    } catch (error) {
      if (signal.aborted) return undefined;
      if (!(error instanceof TypeError)) throw error; // fetch's "terminated": the server cut it off; resume
      if (!connected && ++refused >= 3) throw error;
    }
  }
  return undefined;
}

/** The process's resident set size, in bytes (VmRSS). */
export function rssBytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (match === null) throw new Error(`no VmRSS for process ${pid}`);
  return Number(match[1]) * 1024;
}

/** Samples a process's RSS every `intervalMs` until stopped; `max` is the largest seen. */
export function watchRss(pid: number, intervalMs = 100): { readonly max: number; stop(): number } {
  let max = rssBytes(pid);
  const timer = setInterval(() => {
    try {
      max = Math.max(max, rssBytes(pid));
    } catch {
      clearInterval(timer); // the process is gone: the test sees that elsewhere
    }
  }, intervalMs);
  return {
    get max() {
      return max;
    },
    stop() {
      clearInterval(timer);
      return max;
    },
  };
}
