import type { EventId } from './event-id.js';

export const EVENT_TYPES = ['status', 'message', 'token', 'tool', 'error', 'end'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** Types an agent may emit; `status`, `error` and `end` belong to the runtime. */
export type AgentEventType = Extract<EventType, 'message' | 'token' | 'tool'>;

/**
 * One event of a run. `prev` is the id of the run's previous event (null for the first), so
 * every reader can tell a gap from the end of what is there: events chain like a list, and
 * a reader delivers an event only when its `prev` is the last id it delivered.
 *
 * `json` is the event's data as JSON text (`eventJson`), serialised once where the event is
 * made and carried as is to Redis, the archive and SSE clients: nothing on the way parses it.
 * It is one JSON value on one line; read back from the archive it is the same value, though
 * its spacing and key order may differ (jsonb normalises).
 */
export interface RunEvent {
  readonly id: EventId;
  readonly prev: EventId | null;
  readonly type: EventType;
  readonly json: string;
}

/** A `\u0000` escape that is not itself escaped (preceded by an even number of backslashes). */
const NUL_ESCAPE = /(?<!\\)((?:\\\\)*)\\u0000/g;

/**
 * `data` as an event's JSON text: undefined (and anything else JSON has no text for) is
 * `null`, and U+0000, which Postgres cannot store in jsonb, becomes U+FFFD so a stray NUL
 * does not cost the event its archive. Throws what `JSON.stringify` throws (cycles, BigInt).
 */
export function eventJson(data: unknown): string {
  const json = JSON.stringify(data) ?? 'null';
  return json.includes('\\u0000') ? json.replace(NUL_ESCAPE, '$1\\ufffd') : json;
}

/**
 * What an event costs in memory besides its JSON text, in bytes, about: its objects (the event,
 * its ids), its string header and its place in the queues that hold it.
 */
export const EVENT_OVERHEAD_BYTES = 128;

/**
 * An event's size for the memory bounds (STREAM_MAX_BYTES, RUN_EVENT_BACKLOG_BYTES, catch-up
 * pages), in bytes: its JSON text's length (characters stand for bytes, near enough for a bound
 * and free to count) plus EVENT_OVERHEAD_BYTES, so that many tiny events count too.
 */
export function eventBytes(event: RunEvent): number {
  return event.json.length + EVENT_OVERHEAD_BYTES;
}

export function isEventType(value: string): value is EventType {
  return (EVENT_TYPES as readonly string[]).includes(value);
}
