import { isEventType, type RunEvent } from '../streaming/run-event.js';
import type { EventId } from '../streaming/event-id.js';
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
    data: row.data ?? null,
  };
}

/** The `run_events` table: the durable archive of every run's events. */
export class EventArchiveRepository {
  constructor(private readonly db: Database) {}

  /** Inserts many events in one statement; already archived ones are skipped (retries are safe). */
  async insert(events: readonly ArchivedEvent[]): Promise<void> {
    if (events.length === 0) return;
    const rows = events.map(({ runId, event }) => ({
      run_id: runId,
      ms: event.id.ms,
      seq: event.id.seq,
      prev_ms: event.prev?.ms ?? null,
      prev_seq: event.prev?.seq ?? null,
      type: event.type,
      data: event.data === undefined ? null : event.data,
    }));
    await this.db.query(
      `INSERT INTO run_events (run_id, ms, seq, prev_ms, prev_seq, type, data)
       SELECT run_id, ms, seq, prev_ms, prev_seq, type, data
       FROM jsonb_to_recordset($1::jsonb)
         AS x(run_id uuid, ms bigint, seq integer, prev_ms bigint, prev_seq integer, type text, data jsonb)
       ON CONFLICT DO NOTHING`,
      [JSON.stringify(rows)],
    );
  }

  /** Archived events of a run strictly after `after`, oldest first. */
  async read(runId: string, after: EventId | null, limit: number): Promise<RunEvent[]> {
    const rows = await this.db.query(
      `SELECT ms, seq, prev_ms, prev_seq, type, data FROM run_events
       WHERE run_id = $1 AND ($2::bigint IS NULL OR (ms, seq) > ($2::bigint, $3::integer))
       ORDER BY ms, seq
       LIMIT $4`,
      [runId, after?.ms ?? null, after?.seq ?? 0, limit],
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
