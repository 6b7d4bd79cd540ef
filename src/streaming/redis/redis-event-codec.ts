import { type EventId, formatEventId, isEventType, parseEventId, type RunEvent } from '../../domain/index.js';

/**
 * How events look in Redis (written by redis-append-script.ts). A stream entry has the event's own id (`<ms>-<seq>`, never `*`)
 * and fields `t` (type), `d` (the event's JSON text) and `p` (previous id, empty for the first event).
 * A notification on the events channel names the writing instance and each run's last id,
 * with a third element `1` when that is the run's `end`:
 * `{"i":"<instanceId>","r":[["<runId>","<ms>-<seq>"],["<runId>","<ms>-<seq>",1],...]}`.
 */

const LINE_BREAK = /[\r\n]/;

/** An event's entry id and field values, as the append script (redis-append-script.ts) writes them. */
export function streamEntryOf(event: RunEvent): { id: string; type: string; json: string; prev: string } {
  return {
    id: formatEventId(event.id),
    type: event.type,
    json: event.json,
    prev: event.prev === null ? '' : formatEventId(event.prev),
  };
}

/**
 * One XRANGE/XREAD entry (`[id, [field, value, ...]]`) as an event; null when malformed. The
 * data stays text: it was serialised by the writer and goes to SSE clients as it is, so it is
 * only checked to be one line (a line break would end the SSE `data:` field early).
 */
export function parseStreamEntry(entry: unknown): RunEvent | null {
  if (!Array.isArray(entry) || typeof entry[0] !== 'string' || !Array.isArray(entry[1])) return null;
  const id = parseEventId(entry[0]);
  if (id === null) return null;
  const fields = entry[1] as unknown[];
  let type: unknown;
  let json: unknown;
  let prevText: unknown;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const value = fields[i + 1];
    switch (fields[i]) {
      case 't':
        type = value;
        break;
      case 'd':
        json = value;
        break;
      case 'p':
        prevText = value;
        break;
      default:
        break; // a field of a later version: ignored
    }
  }
  if (typeof type !== 'string' || !isEventType(type) || typeof json !== 'string' || typeof prevText !== 'string') return null;
  if (json === '' || LINE_BREAK.test(json)) return null;
  const prev = prevText === '' ? null : parseEventId(prevText);
  if (prevText !== '' && prev === null) return null;
  return { id, prev, type, json };
}

/** Stream entries (XRANGE/XREAD shape) of a run as events; malformed entries are reported and skipped. */
export function parseStreamEntries(runId: string, reply: unknown, onError: (error: unknown) => void): RunEvent[] {
  const events: RunEvent[] = [];
  if (!Array.isArray(reply)) return events;
  for (const entry of reply) {
    const event = parseStreamEntry(entry);
    if (event === null) onError(new Error(`malformed stream entry of run ${runId} skipped`));
    else events.push(event);
  }
  return events;
}

/** XREAD's RESP2 reply (null, or `[[key, entries], ...]`) as key and raw entries. */
export function parseXReadReply(reply: unknown): Array<[string, unknown[]]> {
  if (!Array.isArray(reply)) return [];
  const streams: Array<[string, unknown[]]> = [];
  for (const stream of reply) {
    if (Array.isArray(stream) && typeof stream[0] === 'string' && Array.isArray(stream[1])) {
      streams.push([stream[0], stream[1] as unknown[]]);
    }
  }
  return streams;
}

export interface Notification {
  readonly instanceId: string;
  /** Each run written in the flush, with its last event id and whether that is the run's `end`. */
  readonly runs: ReadonlyArray<readonly [string, EventId, boolean]>;
}

export function formatNotification(notification: Notification): string {
  return JSON.stringify({
    i: notification.instanceId,
    r: notification.runs.map(([runId, id, ended]) => (ended ? [runId, formatEventId(id), 1] : [runId, formatEventId(id)])),
  });
}

/** Null when malformed. */
export function parseNotification(message: string): Notification | null {
  let value: unknown;
  try {
    value = JSON.parse(message);
  } catch {
    return null; // the caller reports it
  }
  if (typeof value !== 'object' || value === null) return null;
  const { i, r } = value as { i?: unknown; r?: unknown };
  if (typeof i !== 'string' || !Array.isArray(r)) return null;
  const runs: Array<[string, EventId, boolean]> = [];
  for (const item of r) {
    if (!Array.isArray(item) || typeof item[0] !== 'string' || typeof item[1] !== 'string') return null;
    const id = parseEventId(item[1]);
    if (id === null) return null;
    runs.push([item[0], id, item[2] === 1]);
  }
  return { instanceId: i, runs };
}
