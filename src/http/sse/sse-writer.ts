import { once } from 'node:events';
import type { ServerResponse } from 'node:http';
import type { RunEvent } from '../../domain/index.js';
import type { FollowSink } from '../../streaming/run-follower.js';
import { sseFrame, sseFrameOf } from './sse-frame.js';

/** Above this many unsent bytes the writer waits for the socket before taking more events. */
const HIGH_WATER_BYTES = 256 * 1024;
/**
 * The headers go out with the first event (one socket write, not two); a stream with nothing
 * to send this soon gets them alone, so its client knows it is connected.
 */
const HEADERS_ALONE_AFTER_MS = 5;
const PING = ': ping\n\n';

/** Counts what writers send (the instance's Followers); called once per socket write. */
export interface SseTraffic {
  wrote(events: number, bytes: number): void;
}

/**
 * Writes Server-Sent Events to one response. The reader is paced by its socket (the writer
 * waits for `drain` past a high-water mark), so catching up a long run never buffers it
 * whole; live events that pile up meanwhile are the follower's to bound.
 */
export class SseWriter implements FollowSink {
  private headersTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly res: ServerResponse,
    private readonly traffic: SseTraffic = { wrote: () => undefined },
  ) {}

  /** Sends the headers of an event stream (status 200), with the first event or alone within a few ms. */
  open(extraHeaders: Record<string, string> = {}): void {
    this.res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'x-accel-buffering': 'no',
      connection: 'keep-alive',
      ...extraHeaders,
    });
    this.headersTimer = setTimeout(() => {
      this.headersTimer = undefined;
      if (this.writable) this.res.flushHeaders();
    }, HEADERS_ALONE_AFTER_MS);
  }

  /** False once the client is gone or was cut off. */
  get writable(): boolean {
    return !this.res.destroyed && !this.res.writableEnded;
  }

  /**
   * Sends events in one socket write (each write is a syscall and a wake-up); an `end` event
   * closes the response in the same write. False if the listener is gone.
   */
  send(events: readonly RunEvent[]): boolean {
    let chunk = '';
    let bytes = 0;
    for (const event of events) {
      const frame = sseFrameOf(event);
      chunk += frame.text;
      bytes += frame.bytes;
    }
    if (events.at(-1)?.type !== 'end') return this.write(chunk, events.length, bytes);
    this.sentHeaders();
    if (!this.writable) return false;
    this.res.end(chunk);
    this.traffic.wrote(events.length, bytes);
    return true;
  }

  /** The event's frame length in characters, which stand for bytes near enough (the frame is cached). */
  bytesOf(event: RunEvent): number {
    return sseFrame(event).length;
  }

  /** Whether the socket takes more now (its unsent bytes are under the high-water mark). */
  get hasRoom(): boolean {
    return this.res.writableLength <= HIGH_WATER_BYTES;
  }

  /** Resolves once the socket drained or closed. */
  async drained(): Promise<void> {
    if (!this.writable || this.hasRoom) return;
    // One signal removes both listeners once either fires (a slow client waits many times).
    const settled = new AbortController();
    const { signal } = settled;
    try {
      await Promise.race([once(this.res, 'drain', { signal }), once(this.res, 'close', { signal })]);
    } finally {
      settled.abort();
    }
  }

  /** A `: ping` comment; false if the listener is gone. */
  heartbeat(): boolean {
    return this.write(PING, 0, PING.length);
  }

  /** Cuts the listener off (it fell behind): no `end`, it resumes with Last-Event-ID. */
  cutOff(): void {
    this.res.destroy();
  }

  end(): void {
    this.sentHeaders();
    if (this.writable) this.res.end();
  }

  /** Writes `chunk` (`events` events in `bytes` bytes); false if the listener is gone. */
  private write(chunk: string, events: number, bytes: number): boolean {
    this.sentHeaders();
    if (!this.writable) return false;
    this.res.write(chunk);
    this.traffic.wrote(events, bytes);
    return true;
  }

  /** The headers leave with whatever is written now. */
  private sentHeaders(): void {
    clearTimeout(this.headersTimer);
    this.headersTimer = undefined;
  }
}
