import type { EventId } from './event-id.js';

export const EVENT_TYPES = ['status', 'message', 'token', 'tool', 'error', 'end'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** Types an agent may emit; `status`, `error` and `end` belong to the runtime. */
export type AgentEventType = Extract<EventType, 'message' | 'token' | 'tool'>;

export interface RunEvent {
  readonly id: EventId;
  readonly type: EventType;
  readonly data: unknown;
}
