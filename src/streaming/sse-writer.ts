import type { ServerResponse } from 'node:http';
import { formatEventId } from './event-id.js';
import type { RunEvent } from './run-event.js';

/**
 * Writes Server-Sent Events to one response without ever waiting for the client: a listener
 * whose unsent bytes exceed `maxBufferBytes` is disconnected (it resumes with
 * Last-Event-ID), so a slow client never slows the run or other listeners.
 */
export class SseWriter {
  private lastWriteMs = Date.now();

  constructor(
    private readonly res: ServerResponse,
    private readonly maxBufferBytes: number,
  ) {}

  /** Sends the headers of an event stream (status 200 unless given). */
  open(extraHeaders: Record<string, string> = {}): void {
    this.res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'x-accel-buffering': 'no',
      connection: 'keep-alive',
      ...extraHeaders,
    });
    this.res.flushHeaders();
  }

  /** False once the client is gone or was cut off for falling behind. */
  get writable(): boolean {
    return !this.res.destroyed && !this.res.writableEnded;
  }

  /** Writes an event; returns false if the listener is gone or has just been cut off. */
  event(event: RunEvent): boolean {
    return this.write(`id: ${formatEventId(event.id)}\nevent: ${event.type}\ndata: ${JSON.stringify(event.data ?? null)}\n\n`);
  }

  /** A `: ping` comment when nothing was written for `idleMs`. */
  heartbeat(idleMs: number): boolean {
    if (Date.now() - this.lastWriteMs < idleMs) return this.writable;
    return this.write(': ping\n\n');
  }

  end(): void {
    if (this.writable) this.res.end();
  }

  private write(chunk: string): boolean {
    if (!this.writable) return false;
    this.res.write(chunk);
    this.lastWriteMs = Date.now();
    if (this.res.writableLength > this.maxBufferBytes) {
      this.res.destroy();
      return false;
    }
    return true;
  }
}
