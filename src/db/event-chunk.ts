import { compareEventIds, eventBytes, type RunEvent } from '../domain/index.js';

/** One event to archive, with its run. */
export interface ArchivedEvent {
  readonly runId: string;
  readonly event: RunEvent;
}

/**
 * Most `eventBytes` in one chunk (one archive row) unless a single event is larger: a catch-up
 * page (256 KiB) then never loads a row much larger than itself.
 */
export const CHUNK_MAX_BYTES = 64 * 1024;

/** Consecutive events of one run, strictly increasing by id: one row of the archive. */
export interface EventChunk {
  readonly runId: string;
  /** At least one. */
  readonly events: readonly RunEvent[];
  /** The sum of their `eventBytes`. */
  readonly bytes: number;
}

/**
 * A batch's events as chunks: each run's events together, in id order, cut where a chunk would
 * pass `maxBytes` (default CHUNK_MAX_BYTES). Runs keep the order of their first event in the
 * batch. An event named twice (a dead writer's tail archived again by `ensureEnd`) is kept once.
 */
export function chunkEvents(batch: readonly ArchivedEvent[], maxBytes = CHUNK_MAX_BYTES): EventChunk[] {
  const byRun = new Map<string, RunEvent[]>();
  for (const { runId, event } of batch) {
    const events = byRun.get(runId);
    if (events === undefined) byRun.set(runId, [event]);
    else events.push(event);
  }
  const chunks: EventChunk[] = [];
  for (const [runId, events] of byRun) {
    let current: RunEvent[] = [];
    let bytes = 0;
    for (const event of inIdOrder(events)) {
      const size = eventBytes(event);
      if (current.length > 0 && bytes + size > maxBytes) {
        chunks.push({ runId, events: current, bytes });
        current = [];
        bytes = 0;
      }
      current.push(event);
      bytes += size;
    }
    chunks.push({ runId, events: current, bytes });
  }
  return chunks;
}

/** The events by id, each id once (the first of its name); as they are when already in order, as one writer appends them. */
function inIdOrder(events: readonly RunEvent[]): readonly RunEvent[] {
  let ordered = true;
  for (let i = 1; i < events.length && ordered; i += 1)
    ordered = compareEventIds((events[i - 1] as RunEvent).id, (events[i] as RunEvent).id) < 0;
  if (ordered) return events;
  // A stable sort: of two events with one id, the first added comes first and stays.
  const sorted = [...events].sort((a, b) => compareEventIds(a.id, b.id));
  return sorted.filter((event, i) => i === 0 || compareEventIds((sorted[i - 1] as RunEvent).id, event.id) !== 0);
}

/** A chunk of two or more events as two: its first half and the rest (to find the one event the database refuses). */
export function splitChunk(chunk: EventChunk): [EventChunk, EventChunk] {
  const middle = Math.ceil(chunk.events.length / 2);
  const part = (events: readonly RunEvent[]): EventChunk => ({
    runId: chunk.runId,
    events,
    bytes: events.reduce((sum, event) => sum + eventBytes(event), 0),
  });
  return [part(chunk.events.slice(0, middle)), part(chunk.events.slice(middle))];
}
