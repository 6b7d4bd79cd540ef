import { formatEventId, type RunEvent } from '../../domain/index.js';

/** An event's SSE frame and its length in UTF-8 bytes. */
export interface SseFrame {
  readonly text: string;
  readonly bytes: number;
}

/** Each event's frame is built (and measured) once, however many listeners send it. */
const frames = new WeakMap<RunEvent, SseFrame>();

/**
 * The Server-Sent Events frame of an event: `id`, `event`, and its JSON text as one `data`
 * line (JSON text, as JSON.stringify and jsonb write it, escapes every line break).
 */
export function sseFrame(event: RunEvent): string {
  return sseFrameOf(event).text;
}

/** The frame with its byte length, built once per event. */
export function sseFrameOf(event: RunEvent): SseFrame {
  let frame = frames.get(event);
  if (frame === undefined) {
    const text = `id: ${formatEventId(event.id)}\nevent: ${event.type}\ndata: ${event.json}\n\n`;
    frame = { text, bytes: Buffer.byteLength(text) };
    frames.set(event, frame);
  }
  return frame;
}
