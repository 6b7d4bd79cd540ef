import { formatEventId, type RunEvent } from '../../domain/index.js';

/** Each event's frame is built once, however many listeners send it. */
const frames = new WeakMap<RunEvent, string>();

/**
 * The Server-Sent Events frame of an event: `id`, `event`, and its JSON text as one `data`
 * line (JSON text, as JSON.stringify and jsonb write it, escapes every line break).
 */
export function sseFrame(event: RunEvent): string {
  let frame = frames.get(event);
  if (frame === undefined) {
    frame = `id: ${formatEventId(event.id)}\nevent: ${event.type}\ndata: ${event.json}\n\n`;
    frames.set(event, frame);
  }
  return frame;
}
