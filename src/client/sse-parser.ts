/** One Server-Sent Event as sent: the `id` of its frame (null when it had none), its type and its data lines joined. */
export interface SseFrame {
  readonly id: string | null;
  readonly event: string;
  readonly data: string;
}

/**
 * An incremental parser of the `text/event-stream` format (WHATWG HTML, "Parsing an event
 * stream"): lines end in CRLF, LF or CR (also split across chunks), `data` lines join with
 * `\n`, one space after the colon is dropped, comments (`: ping`) and unknown fields are
 * ignored, and a blank line dispatches a frame that has data. Unlike EventSource, an id is the
 * frame's own: a frame without an `id` line has none (agentd gives every event one).
 */
export class SseParser {
  private buffer = '';
  /** The last chunk ended in CR: a LF that starts the next one ends the same line. */
  private pendingCr = false;
  private id: string | null = null;
  private event = '';
  private data: string[] = [];

  /** Feeds decoded text; returns the frames it completed. */
  push(text: string): SseFrame[] {
    if (this.pendingCr && text.startsWith('\n')) text = text.slice(1);
    this.pendingCr = false;
    this.buffer += text;
    const frames: SseFrame[] = [];
    let start = 0;
    const lineEnd = /\r\n|\r|\n/g;
    for (let match = lineEnd.exec(this.buffer); match !== null; match = lineEnd.exec(this.buffer)) {
      this.line(this.buffer.slice(start, match.index), frames);
      start = match.index + match[0].length;
      if (match[0] === '\r' && start === this.buffer.length) this.pendingCr = true;
    }
    this.buffer = this.buffer.slice(start);
    return frames;
  }

  private line(line: string, frames: SseFrame[]): void {
    if (line === '') {
      if (this.data.length > 0) frames.push({ id: this.id, event: this.event === '' ? 'message' : this.event, data: this.data.join('\n') });
      this.id = null;
      this.event = '';
      this.data = [];
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
    else if (field === 'id' && !value.includes('\0')) this.id = value;
  }
}

/**
 * The frames of an event-stream body, as they arrive; `onChunk` is told of every chunk read
 * (comments too), so a caller can tell a live connection from a silent one. A frame cut off by
 * the end of the body is dropped, as the format says. When `signal` aborts, the body is
 * cancelled and the frames end (whether or not the fetch that made it ties the two).
 */
export async function* sseFrames(
  body: ReadableStream<Uint8Array>,
  signal: AbortSignal,
  onChunk: () => void = () => undefined,
): AsyncGenerator<SseFrame> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const parser = new SseParser();
  const stop = () => void reader.cancel(signal.reason).catch(() => undefined); // the loop below ends either way
  signal.addEventListener('abort', stop, { once: true });
  if (signal.aborted) stop();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      onChunk();
      yield* parser.push(decoder.decode(value, { stream: true }));
    }
  } finally {
    signal.removeEventListener('abort', stop);
    // Stops the download when the reader leaves early (or the body failed: then this is a no-op).
    reader.cancel().catch(() => undefined); // the body's own error was thrown by read() above
  }
}
