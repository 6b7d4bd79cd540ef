import { compareEventIds, type EventId } from './event-id.js';
import type { RunEvent } from './run-event.js';

/**
 * Whether `event` is the next one for a reader that has everything up to `last`: it is newer,
 * and the event before it is not newer than `last` (so nothing lies between). `last` need
 * not be an event id: a client may resume from any id.
 */
export function continuesFrom(event: RunEvent, last: EventId | null): boolean {
  if (last === null) return event.prev === null;
  return compareEventIds(event.id, last) > 0 && (event.prev === null || compareEventIds(event.prev, last) <= 0);
}

/**
 * The longest prefix of `events` that continues the chain right after `after`, ending at the
 * run's `end` if it holds it: nothing follows an `end` (a writer that was swept while cut off
 * may have added events after it, which no reader may pass on).
 */
export function takeChain(events: readonly RunEvent[], after: EventId | null): RunEvent[] {
  const chain: RunEvent[] = [];
  let last = after;
  for (const event of events) {
    if (!continuesFrom(event, last)) break;
    chain.push(event);
    last = event.id;
    if (event.type === 'end') break;
  }
  return chain;
}
