import type { BuiltInEventType, EventType } from '../domain/run-event.js';
import type { BuiltInEventView, EventView } from '../domain/wire.js';
import type { FinalStatus, RunStatus } from '../domain/run-status.js';

/*
 * The few runtime values of the contract's vocabulary the client needs. The client may not
 * load server code, so it holds its own lists; the checks below fail the build when the
 * domain's types gain a member these lists lack.
 */

export const FINAL_STATUSES = ['completed', 'failed', 'cancelled', 'timed_out', 'interrupted'] as const satisfies readonly FinalStatus[];
export const EVENT_TYPES = ['status', 'message', 'token', 'tool', 'error', 'end'] as const satisfies readonly BuiltInEventType[];
/** The server's EVENT_TYPE_PATTERN: what an agent's own event types look like. */
const EVENT_TYPE_PATTERN = /^[a-z][a-z0-9_.-]{0,63}$/;

type Missing<All, Listed> = Exclude<All, Listed> extends never ? true : { missing: Exclude<All, Listed> };
const everyFinalStatus: Missing<FinalStatus, (typeof FINAL_STATUSES)[number]> = true;
const everyEventType: Missing<BuiltInEventType, (typeof EVENT_TYPES)[number]> = true;
void everyFinalStatus;
void everyEventType;

/** Whether a run in this status has ended. */
export function isFinalStatus(status: RunStatus): status is FinalStatus {
  return (FINAL_STATUSES as readonly string[]).includes(status);
}

/** Whether `value` is a valid event type: a built-in one or an agent's own. */
export function isEventType(value: string): value is EventType {
  return EVENT_TYPE_PATTERN.test(value);
}

/**
 * Whether the event is of a type the contract defines (`status`, `message`, `token`, `tool`,
 * `error`, `end`), so that its `type` narrows its `data`; an agent's own types are the rest.
 */
export function isBuiltInEvent(event: EventView): event is BuiltInEventView {
  return (EVENT_TYPES as readonly string[]).includes(event.type);
}

/** An event id `<ms>-<seq>` as its number pair. */
export interface EventIdPair {
  readonly ms: number;
  readonly seq: number;
}

const EVENT_ID = /^(\d{1,15})-(\d{1,9})$/;

/** Parses `<ms>-<seq>`; null when malformed. */
export function parseEventId(text: string): EventIdPair | null {
  const match = EVENT_ID.exec(text);
  return match === null ? null : { ms: Number(match[1]), seq: Number(match[2]) };
}

/** Negative when a < b, 0 when equal, positive when a > b (ids compare as number pairs, not as text). */
export function compareEventIds(a: EventIdPair, b: EventIdPair): number {
  return a.ms === b.ms ? a.seq - b.seq : a.ms - b.ms;
}
