import { type EventId, formatEventId, isEventType, type RunEvent } from '../domain/index.js';

/**
 * Why a chunk's text could not be made or read. Its message names the event or the line, never
 * the event's data, so it may be logged.
 */
export class EventChunkTextError extends Error {
  constructor(
    /** `line_break`: an event's JSON text holds one (it could not be framed); `malformed`: stored text that is not a chunk's. */
    readonly code: 'line_break' | 'malformed',
    message: string,
  ) {
    super(message);
    this.name = 'EventChunkTextError';
  }
}

/** What an absent `prev` is written as. */
const NO_PREV = '-';
const DIGITS = /^\d{1,15}$/;

/**
 * The events of one chunk as text, one line per event: `ms seq prevMs prevSeq type json\n`
 * (`-` for both halves of an absent `prev`). Every field before the JSON is a number or a type
 * without spaces, and the JSON text (`eventJson`'s) is one line, so a reader splits at the
 * first five spaces of each line and takes the rest as it was written: no JSON is parsed or
 * escaped either way. Throws EventChunkTextError for JSON text that holds a line break
 * (`eventJson` never makes one) or is empty.
 */
export function encodeEventChunk(events: readonly RunEvent[]): string {
  let text = '';
  for (const { id, prev, type, json } of events) {
    if (json.length === 0 || json.includes('\n') || json.includes('\r')) {
      throw new EventChunkTextError(
        'line_break',
        `event ${formatEventId(id)}'s JSON text is empty or holds a line break: it cannot be archived`,
      );
    }
    const prevText = prev === null ? `${NO_PREV} ${NO_PREV}` : `${prev.ms} ${prev.seq}`;
    text += `${id.ms} ${id.seq} ${prevText} ${type} ${json}\n`;
  }
  return text;
}

/** The events `encodeEventChunk` wrote, in order; their JSON text exactly as it was. Throws EventChunkTextError for anything else. */
export function decodeEventChunk(text: string): RunEvent[] {
  const events: RunEvent[] = [];
  let start = 0;
  while (start < text.length) {
    const end = text.indexOf('\n', start);
    if (end === -1) throw malformed(events.length, 'it does not end with a line break');
    events.push(decodeLine(text, start, end, events.length));
    start = end + 1;
  }
  if (events.length === 0) throw malformed(0, 'it holds no event');
  return events;
}

/** The event on text[start, end): five space-separated fields, then the JSON text. */
function decodeLine(text: string, start: number, end: number, index: number): RunEvent {
  const fields: string[] = [];
  let at = start;
  while (fields.length < 5) {
    const space = text.indexOf(' ', at);
    if (space === -1 || space >= end) throw malformed(index, `it has ${fields.length} of the 5 fields before the JSON`);
    fields.push(text.slice(at, space));
    at = space + 1;
  }
  const [ms, seq, prevMs, prevSeq, type] = fields as [string, string, string, string, string];
  if (!isEventType(type)) throw malformed(index, 'its type is not an event type');
  if (at === end) throw malformed(index, 'its JSON text is empty');
  return { id: eventId(ms, seq, index), prev: prevId(prevMs, prevSeq, index), type, json: text.slice(at, end) };
}

function eventId(ms: string, seq: string, index: number): EventId {
  if (!DIGITS.test(ms) || !DIGITS.test(seq)) throw malformed(index, 'its id is not two numbers');
  return { ms: Number(ms), seq: Number(seq) };
}

function prevId(ms: string, seq: string, index: number): EventId | null {
  if (ms === NO_PREV && seq === NO_PREV) return null;
  return eventId(ms, seq, index);
}

function malformed(index: number, why: string): EventChunkTextError {
  return new EventChunkTextError('malformed', `archived event chunk text is malformed at event ${index + 1}: ${why}`);
}
