import http from 'node:http';

export interface SseEvent {
  readonly id: string;
  readonly event: string;
  readonly data: string;
}

/**
 * A small Server-Sent Events parser: feed it decoded text, it calls back once per complete
 * event (blank-line terminated). Comment lines (`: ping`) are counted, not reported.
 */
export class SseParser {
  private buffer = '';
  comments = 0;

  constructor(private readonly onEvent: (event: SseEvent) => void) {}

  push(chunk: string): void {
    this.buffer = this.buffer.length === 0 ? chunk : this.buffer + chunk;
    if (this.buffer.includes('\r')) this.buffer = this.buffer.replace(/\r\n?/g, '\n');
    let start = 0;
    for (let end = this.buffer.indexOf('\n\n', start); end >= 0; end = this.buffer.indexOf('\n\n', start)) {
      this.block(this.buffer.slice(start, end));
      start = end + 2;
    }
    this.buffer = start === 0 ? this.buffer : this.buffer.slice(start);
  }

  private block(block: string): void {
    let id = '';
    let event = 'message';
    let data: string | undefined;
    let lineStart = 0;
    while (lineStart <= block.length) {
      let lineEnd = block.indexOf('\n', lineStart);
      if (lineEnd < 0) lineEnd = block.length;
      const colon = block.indexOf(':', lineStart);
      if (colon === lineStart) {
        this.comments += 1;
      } else if (colon > lineStart && colon < lineEnd) {
        const field = block.slice(lineStart, colon);
        const valueStart = block.charCodeAt(colon + 1) === 32 ? colon + 2 : colon + 1;
        const value = block.slice(valueStart, lineEnd);
        if (field === 'data') data = data === undefined ? value : `${data}\n${value}`;
        else if (field === 'event') event = value;
        else if (field === 'id') id = value;
      }
      lineStart = lineEnd + 1;
    }
    if (data !== undefined) this.onEvent({ id, event, data });
  }
}

export interface SseRequest {
  readonly url: string;
  readonly method?: 'GET' | 'POST';
  readonly token?: string;
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
}

export interface SseHandlers {
  /** Response headers arrived (any status). */
  onOpen?(status: number, headers: http.IncomingHttpHeaders): void;
  /** `arrivalMs` is Date.now() when the chunk holding the event was read. */
  onEvent(event: SseEvent, arrivalMs: number): void;
  /** The stream ended (server closed it, or it failed). */
  onClose(error: Error | null): void;
}

/** Opens one SSE stream on raw node:http; returns a function that disconnects it. */
export function openSse(agent: http.Agent | false, request: SseRequest, handlers: SseHandlers): () => void {
  const payload = request.body === undefined ? undefined : JSON.stringify(request.body);
  const headers: Record<string, string> = { accept: 'text/event-stream', ...request.headers };
  if (request.token !== undefined) headers.authorization = `Bearer ${request.token}`;
  if (payload !== undefined) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(Buffer.byteLength(payload));
  }
  let closed = false;
  const close = (error: Error | null) => {
    if (closed) return;
    closed = true;
    handlers.onClose(error);
  };
  const req = http.request(request.url, { method: request.method ?? 'GET', agent, headers }, (res) => {
    handlers.onOpen?.(res.statusCode ?? 0, res.headers);
    const parser = new SseParser((event) => handlers.onEvent(event, arrival));
    let arrival = 0;
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      arrival = Date.now();
      parser.push(chunk);
    });
    res.on('end', () => close(null));
    res.on('error', (error) => close(error));
    res.on('close', () => close(null));
  });
  req.on('error', (error) => close(error));
  req.end(payload);
  return () => {
    req.destroy();
  };
}

export interface StreamTiming {
  readonly status: number;
  /** From sending the request to the response headers (agentd: the run is admitted). */
  readonly headersMs: number;
  /** From sending the request to the first complete event. */
  readonly firstEventMs: number;
  /** To the first event `isOutput` accepts (the agent's own output). */
  readonly firstOutputMs: number;
  /** To the end of the response. */
  readonly totalMs: number;
  readonly events: SseEvent[];
}

/** Sends one streaming request and times its first event, its first output event and its end. */
export function timeStream(
  agent: http.Agent,
  request: SseRequest,
  isOutput: (event: SseEvent) => boolean,
  timeoutMs = 30_000,
): Promise<StreamTiming> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const elapsed = () => Number(process.hrtime.bigint() - start) / 1e6;
    let status = 0;
    let headersMs = Number.NaN;
    let firstEventMs = Number.NaN;
    let firstOutputMs = Number.NaN;
    const events: SseEvent[] = [];
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`stream ${request.url} did not end in ${timeoutMs} ms`));
    }, timeoutMs);
    const stop = openSse(agent, request, {
      onOpen(code) {
        status = code;
        headersMs = elapsed();
      },
      onEvent(event) {
        const at = elapsed();
        if (events.length === 0) firstEventMs = at;
        if (Number.isNaN(firstOutputMs) && isOutput(event)) firstOutputMs = at;
        events.push(event);
      },
      onClose(error) {
        clearTimeout(timer);
        if (error !== null) reject(error);
        else resolve({ status, headersMs, firstEventMs, firstOutputMs, totalMs: elapsed(), events });
      },
    });
  });
}
