import { formatEventId, type RunEvent } from '../../domain/index.js';

/** An event's SSE frame and its length in UTF-8 bytes. */
export interface SseFrame {
  readonly text: string;
  readonly bytes: number;
}

/**
 * Recent events' frames, so that an event's frame is built (and measured) once however many
 * listeners send it: a direct-mapped table of SLOTS entries, placed by event id and checked by
 * identity. Nothing for the collector to trace per event: a WeakMap entry per delivered event
 * cost about 0.7 µs (mostly its ephemeron at the next scavenge), a few per cent of a reader's
 * CPU per event in the fan-out profile. An event pushed out by a newer one that shares its slot
 * is built again if sent again (a late catch-up); the frame is the same.
 *
 * Bounded in bytes: only frames of up to MAX_CACHED_CHARS are kept (with their event), so the
 * table holds at most SLOTS × 2 × MAX_CACHED_CHARS characters (8 MB). Larger frames are built
 * per send: their write costs far more than building them, and a table of 64 KB events would
 * hold hundreds of megabytes.
 */
const SLOTS = 1_024;
const MAX_CACHED_CHARS = 4_096;
const cachedEvents: Array<RunEvent | undefined> = new Array<RunEvent | undefined>(SLOTS).fill(undefined);
const cachedFrames: Array<SseFrame | undefined> = new Array<SseFrame | undefined>(SLOTS).fill(undefined);

/**
 * The Server-Sent Events frame of an event: `id`, `event`, and its JSON text as one `data`
 * line (JSON text, as JSON.stringify and jsonb write it, escapes every line break).
 */
export function sseFrame(event: RunEvent): string {
  return sseFrameOf(event).text;
}

/** The frame with its byte length, built once per event. */
export function sseFrameOf(event: RunEvent): SseFrame {
  // Events of many runs stamped in the same millisecond share a slot: the last one built keeps
  // it, which is enough for the sends that follow it (to each of its listeners, at once).
  const slot = (event.id.ms * 31 + event.id.seq) % SLOTS;
  const cached = cachedEvents[slot] === event ? cachedFrames[slot] : undefined;
  if (cached !== undefined) return cached;
  const text = `id: ${formatEventId(event.id)}\nevent: ${event.type}\ndata: ${event.json}\n\n`;
  const frame = { text, bytes: Buffer.byteLength(text) };
  if (text.length <= MAX_CACHED_CHARS) {
    cachedEvents[slot] = event;
    cachedFrames[slot] = frame;
  }
  return frame;
}
