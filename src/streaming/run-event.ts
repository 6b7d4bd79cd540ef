import type { EventId } from './event-id.js';

export const EVENT_TYPES = ['status', 'message', 'token', 'tool', 'error', 'end'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** Types an agent may emit; `status`, `error` and `end` belong to the runtime. */
export type AgentEventType = Extract<EventType, 'message' | 'token' | 'tool'>;

/**
 * One event of a run. `prev` is the id of the run's previous event (null for the first), so
 * every reader can tell a gap from the end of what is there: events chain like a list, and
 * a reader delivers an event only when its `prev` is the last id it delivered.
 */
export interface RunEvent {
  readonly id: EventId;
  readonly prev: EventId | null;
  readonly type: EventType;
  readonly data: unknown;
}

export function isEventType(value: string): value is EventType {
  return (EVENT_TYPES as readonly string[]).includes(value);
}
