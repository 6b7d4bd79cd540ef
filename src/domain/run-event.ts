import type { EventId } from './event-id.js';

/** The event types the contract defines: the runtime's own and those of the built-in agents. */
export const EVENT_TYPES = ['status', 'message', 'token', 'tool', 'error', 'end'] as const;
export type BuiltInEventType = (typeof EVENT_TYPES)[number];

/** The types only the runtime emits: an agent's emit of one of them is refused. */
export const RUNTIME_EVENT_TYPES = ['status', 'error', 'end'] as const;
export type RuntimeEventType = (typeof RUNTIME_EVENT_TYPES)[number];

/**
 * A type an agent defines for itself (`progress`, `chart.point`, …): any string matching
 * EVENT_TYPE_PATTERN. (`string & {}` keeps the built-in literals offered in editors.)
 */
export type CustomEventType = string & {};

/** Every event's type: a built-in one, or an agent's own (EVENT_TYPE_PATTERN). */
export type EventType = BuiltInEventType | CustomEventType;

/**
 * What an agent may pass to emit: any type matching EVENT_TYPE_PATTERN but `status`, `error`
 * and `end`, which belong to the runtime (checked when emitted; the literals are for editors).
 */
export type AgentEventType = Exclude<BuiltInEventType, RuntimeEventType> | CustomEventType;

/** What an event type may look like: lowercase, 1-64 characters, starting with a letter (it is an SSE `event:` field). */
export const EVENT_TYPE_PATTERN = /^[a-z][a-z0-9_.-]{0,63}$/;

/**
 * One event of a run. `prev` is the id of the run's previous event (null for the first), so
 * every reader can tell a gap from the end of what is there: events chain like a list, and
 * a reader delivers an event only when its `prev` is the last id it delivered.
 *
 * `json` is the event's data as JSON text (`eventJson`), serialised once where the event is
 * made and carried as is to Redis, the archive and SSE clients: nothing on the way parses it.
 * It is one JSON value on one line, and the archive gives it back as it was written (events
 * archived before the archive held chunks come back as jsonb wrote them: the same value, its
 * own spacing and key order).
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
 * `null`, and U+0000 becomes U+FFFD: the archive was jsonb, which cannot hold it, and clients
 * have always received it so (the archive's chunk text could hold the escape now). Throws what
 * `JSON.stringify` throws (cycles, BigInt).
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

/** Whether `value` is a valid event type, built-in or an agent's own (what storage and readers accept). */
export function isEventType(value: string): value is EventType {
  return EVENT_TYPE_PATTERN.test(value);
}

/** Whether `value` is one of the contract's own types. */
export function isBuiltInEventType(value: string): value is BuiltInEventType {
  return (EVENT_TYPES as readonly string[]).includes(value);
}

/** Why an agent may not emit `type`, or null when it may. */
export function agentEventTypeProblem(type: unknown): string | null {
  // Agents written in JavaScript may pass anything: a number or undefined is refused here, not in Redis.
  if (typeof type !== 'string') return `event type must be a string, not ${type === null ? 'null' : typeof type}`;
  if ((RUNTIME_EVENT_TYPES as readonly string[]).includes(type)) return `"${type}" events belong to the runtime`;
  if (!EVENT_TYPE_PATTERN.test(type)) return `event type ${JSON.stringify(type.slice(0, 80))} does not match ${EVENT_TYPE_PATTERN.source}`;
  return null;
}
