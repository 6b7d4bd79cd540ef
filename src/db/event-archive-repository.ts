import { EVENT_OVERHEAD_BYTES, type EventId, isEventType, type RunEvent } from '../domain/index.js';
import type { Database, Row } from './database.js';

export interface ArchivedEvent {
  readonly runId: string;
  readonly event: RunEvent;
}

function toEvent(row: Row): RunEvent {
  const type = String(row.type);
  if (!isEventType(type)) throw new Error(`archived event of unknown type ${type}`);
  return {
    id: { ms: Number(row.ms), seq: Number(row.seq) },
    prev: row.prev_ms === null || row.prev_ms === undefined ? null : { ms: Number(row.prev_ms), seq: Number(row.prev_seq) },
    type,
    json: typeof row.data === 'string' ? row.data : 'null', // a SQL NULL is JSON null
  };
}

/**
 * One event as its element of the `jsonb_to_recordset` document, built as text so that the
 * event's JSON text (one JSON value, as `eventJson` makes it) goes in as it is, neither parsed
 * nor serialised again. The other fields are numbers and a type from a fixed set; the run id
 * is quoted. Built when the batch is written, so the text dies young.
 */
function recordsetElement({ runId, event }: ArchivedEvent): string {
  const prevMs = event.prev === null ? 'null' : event.prev.ms;
  const prevSeq = event.prev === null ? 'null' : event.prev.seq;
  return (
    `{"run_id":${JSON.stringify(runId)},"ms":${event.id.ms},"seq":${event.id.seq},` +
    `"prev_ms":${prevMs},"prev_seq":${prevSeq},"type":"${event.type}","data":${event.json}}`
  );
}

/** The `run_events` table: the durable archive of every run's events. */
export class EventArchiveRepository {
  constructor(private readonly db: Database) {}

  /** Inserts many events in one statement; already archived ones are skipped (retries are safe). */
  async insert(events: readonly ArchivedEvent[]): Promise<void> {
    if (events.length === 0) return;
    await this.db.query(
      `INSERT INTO run_events (run_id, ms, seq, prev_ms, prev_seq, type, data)
       SELECT run_id, ms, seq, prev_ms, prev_seq, type, data
       FROM jsonb_to_recordset($1::jsonb)
         AS x(run_id uuid, ms bigint, seq integer, prev_ms bigint, prev_seq integer, type text, data jsonb)
       ON CONFLICT DO NOTHING`,
      [`[${events.map(recordsetElement).join(',')}]`],
    );
  }

  /**
   * Archived events of a run strictly after `after`, oldest first: at most `limit`, and only
   * until their `eventBytes` reach `maxBytes` (that one included, so at least one), summed in
   * the database so that a page of large events never crosses the wire whole. Their JSON text
   * is jsonb's: the same values as written, spaced and ordered its own way, and still one line
   * (jsonb escapes line breaks inside strings).
   */
  async read(runId: string, after: EventId | null, limit: number, maxBytes = Number.MAX_SAFE_INTEGER): Promise<RunEvent[]> {
    // length() counts characters, as eventBytes does (a JavaScript string counts an astral
    // character twice: the database's sum is never above the reader's).
    const rows = await this.db.query(
      `SELECT ms, seq, prev_ms, prev_seq, type, data FROM (
         SELECT ms, seq, prev_ms, prev_seq, type, data,
                sum(length(data) + ${EVENT_OVERHEAD_BYTES}) OVER (ORDER BY ms, seq ROWS UNBOUNDED PRECEDING)
                  - (length(data) + ${EVENT_OVERHEAD_BYTES}) AS bytes_before
         FROM (
           SELECT ms, seq, prev_ms, prev_seq, type, coalesce(data::text, 'null') AS data FROM run_events
           WHERE run_id = $1 AND ($2::bigint IS NULL OR (ms, seq) > ($2::bigint, $3::integer))
           ORDER BY ms, seq
           LIMIT $4
         ) page
       ) sized
       WHERE bytes_before < $5::bigint
       ORDER BY ms, seq`,
      [runId, after?.ms ?? null, after?.seq ?? 0, limit, maxBytes],
    );
    return rows.map(toEvent);
  }

  /** The id of the run's archived `end` event, or null. */
  async endId(runId: string): Promise<EventId | null> {
    const rows = await this.db.query(`SELECT ms, seq FROM run_events WHERE run_id = $1 AND type = 'end' LIMIT 1`, [runId]);
    const row = rows[0];
    return row === undefined ? null : { ms: Number(row.ms), seq: Number(row.seq) };
  }

  /** The run's last archived event id, or null. */
  async lastId(runId: string): Promise<EventId | null> {
    const rows = await this.db.query(`SELECT ms, seq FROM run_events WHERE run_id = $1 ORDER BY ms DESC, seq DESC LIMIT 1`, [runId]);
    const row = rows[0];
    return row === undefined ? null : { ms: Number(row.ms), seq: Number(row.seq) };
  }
}
