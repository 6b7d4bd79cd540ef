/**
 * Event ids `<ms>-<seq>`: assigned by the runtime per run (never by Redis), strictly
 * increasing within a run, compared as number pairs. The same id names the same event in
 * memory, in the Redis stream and in the archive.
 */
export interface EventId {
  readonly ms: number;
  readonly seq: number;
}

/** The text of an event id (what parseEventId accepts). */
export const EVENT_ID = /^(\d{1,15})-(\d{1,9})$/;

/** Parses `<ms>-<seq>`; null when malformed. */
export function parseEventId(text: string): EventId | null {
  const match = EVENT_ID.exec(text);
  if (match === null) return null;
  return { ms: Number(match[1]), seq: Number(match[2]) };
}

export function formatEventId(id: EventId): string {
  return `${id.ms}-${id.seq}`;
}

/** Negative when a < b, 0 when equal, positive when a > b. */
export function compareEventIds(a: EventId, b: EventId): number {
  return a.ms === b.ms ? a.seq - b.seq : a.ms - b.ms;
}

/** Hands out strictly increasing ids for one run, even if the wall clock steps back. */
export class EventIdGenerator {
  private last: EventId = { ms: 0, seq: 0 };

  next(nowMs: number = Date.now()): EventId {
    const id = nowMs > this.last.ms ? { ms: nowMs, seq: 0 } : { ms: this.last.ms, seq: this.last.seq + 1 };
    this.last = id;
    return id;
  }
}
