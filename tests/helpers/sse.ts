import { parseEventId } from '../../src/domain/index.js';

export interface SseEvent {
  readonly id: string;
  readonly event: string;
  readonly data: any;
}

export interface SseResult {
  readonly status: number;
  readonly headers: Headers;
  readonly events: SseEvent[];
  readonly pings: number;
  /** The JSON body of a non-stream answer (errors). */
  readonly body?: any;
  /** True when the server closed the stream (rather than us stopping early). */
  readonly closedByServer: boolean;
}

export interface SseOptions {
  readonly token: string;
  readonly method?: 'GET' | 'POST';
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
  /** Stop reading (and disconnect) once this returns true for the events so far. */
  readonly stopWhen?: (events: SseEvent[]) => boolean;
  /** Called with each event as it arrives. */
  readonly onEvent?: (event: SseEvent) => void;
  readonly timeoutMs?: number;
}

/** Reads a Server-Sent Events response until the server closes it or `stopWhen` says so. */
export async function readSse(url: string, options: SseOptions): Promise<SseResult> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error('SSE read timed out')), options.timeoutMs ?? 30_000);
  try {
    const headers: Record<string, string> = { authorization: `Bearer ${options.token}`, ...options.headers };
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(url, {
      method: options.method ?? 'GET',
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      signal: controller.signal,
    });
    if (!(response.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
      const text = await response.text();
      return {
        status: response.status,
        headers: response.headers,
        events: [],
        pings: 0,
        body: text ? JSON.parse(text) : undefined,
        closedByServer: true,
      };
    }
    const events: SseEvent[] = [];
    let pings = 0;
    let buffer = '';
    let current: { id?: string; event?: string; data?: string } = {};
    const decoder = new TextDecoder();
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return { status: response.status, headers: response.headers, events, pings, closedByServer: true };
      buffer += decoder.decode(value, { stream: true });
      for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (line === '') {
          if (current.data !== undefined) {
            const event = { id: current.id ?? '', event: current.event ?? 'message', data: JSON.parse(current.data) };
            events.push(event);
            options.onEvent?.(event);
          }
          current = {};
          if (options.stopWhen?.(events)) {
            controller.abort();
            return { status: response.status, headers: response.headers, events, pings, closedByServer: false };
          }
        } else if (line.startsWith(':')) {
          pings += 1;
        } else {
          const colon = line.indexOf(':');
          const field = line.slice(0, colon);
          const value = line.slice(colon + 1).replace(/^ /, '');
          if (field === 'id' || field === 'event' || field === 'data') current[field] = value;
        }
      }
    }
  } finally {
    clearTimeout(timer);
  }
}

/** Asserts ids strictly increase as number pairs and returns them. */
export function assertIncreasingIds(events: readonly SseEvent[]): string[] {
  let last: { ms: number; seq: number } | null = null;
  for (const event of events) {
    const id = parseEventId(event.id);
    if (id === null) throw new Error(`malformed event id ${event.id}`);
    if (last !== null && (id.ms < last.ms || (id.ms === last.ms && id.seq <= last.seq))) {
      throw new Error(`event ids not strictly increasing: ${last.ms}-${last.seq} then ${event.id}`);
    }
    last = id;
  }
  return events.map((e) => e.id);
}
