import { formatEventId } from './event-id.js';
import type { RunEvent } from './run-event.js';

/** Each event is serialised once, however many listeners send it. */
const frames = new WeakMap<RunEvent, string>();

/** The Server-Sent Events frame of an event: `id`, `event`, one line of JSON `data`. */
export function sseFrame(event: RunEvent): string {
  let frame = frames.get(event);
  if (frame === undefined) {
    frame = `id: ${formatEventId(event.id)}\nevent: ${event.type}\ndata: ${JSON.stringify(event.data ?? null)}\n\n`;
    frames.set(event, frame);
  }
  return frame;
}
