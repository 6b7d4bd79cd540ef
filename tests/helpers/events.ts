import { type EventId, eventJson, type EventType, type RunEvent } from '../../src/domain/index.js';

/** Where test events start unless told: a plausible wall-clock millisecond. */
export const FIRST_EVENT_MS = 1_700_000_000_000;

/** One event with id `<ms>-<seq>`; by default a `token` carrying `{}`, seq 0, first of its run. */
export function runEvent(
  ms: number,
  { seq = 0, prev = null, type = 'token', data = {} }: { seq?: number; prev?: EventId | null; type?: EventType; data?: unknown } = {},
): RunEvent {
  return { id: { ms, seq }, prev, type, json: eventJson(data) };
}

/**
 * Chained events of one run, the i-th carrying `data[i]`: ids from `firstMs` (default
 * FIRST_EVENT_MS), `perMs` of them sharing a millisecond (default 1), each `prev` the id
 * before it; `type(i)` gives the i-th its type (default `token`).
 */
export function eventChain(
  data: readonly unknown[],
  {
    firstMs = FIRST_EVENT_MS,
    perMs = 1,
    type = () => 'token',
  }: { firstMs?: number; perMs?: number; type?: (index: number) => EventType } = {},
): RunEvent[] {
  const events: RunEvent[] = [];
  let prev: EventId | null = null;
  for (const [i, value] of data.entries()) {
    const event = runEvent(firstMs + Math.floor(i / perMs), { seq: i % perMs, prev, type: type(i), data: value });
    events.push(event);
    prev = event.id;
  }
  return events;
}
