import { compareEventIds, EVENT_OVERHEAD_BYTES, eventBytes, type EventId, type RunEvent } from '../domain/index.js';
import type { Database, Row } from './database.js';
import { type ArchivedEvent, CHUNK_MAX_BYTES, chunkEvents, type EventChunk } from './event-chunk.js';
import { decodeEventChunk, encodeEventChunk } from './event-chunk-text.js';

export type { ArchivedEvent, EventChunk } from './event-chunk.js';

/**
 * How many chunks, beginning last at or before a read's `after`, are looked at for events after
 * it. A chunk is one writer's consecutive events, at most CHUNK_MAX_BYTES of `eventBytes` (so at
 * most this many events) unless it is one event, and every chunk that begins inside it begins at
 * one of its events: a chunk holding events after `after` is among this many.
 */
const STRADDLE_LOOKBACK = Math.ceil(CHUNK_MAX_BYTES / EVENT_OVERHEAD_BYTES);

/** An array parameter of numbers, uuids or booleans (none needs quoting). */
function plainArray(values: readonly (number | string | boolean)[]): string {
  return `{${values.join(',')}}`;
}

/** A text[] parameter: each element quoted, its backslashes and quotes escaped. */
function textArray(values: readonly string[]): string {
  return `{${values.map((value) => `"${value.replace(/[\\"]/g, '\\$&')}"`).join(',')}}`;
}

function idOf(ms: unknown, seq: unknown): EventId {
  return { ms: Number(ms), seq: Number(seq) };
}

/** One chunk's columns, in the order of the INSERT's unnest. */
function chunkColumns(chunks: readonly EventChunk[]): string[] {
  const firsts = chunks.map((chunk) => chunk.events[0] as RunEvent);
  const lasts = chunks.map((chunk) => chunk.events.at(-1) as RunEvent);
  return [
    plainArray(chunks.map((chunk) => chunk.runId)),
    plainArray(firsts.map((event) => event.id.ms)),
    plainArray(firsts.map((event) => event.id.seq)),
    plainArray(lasts.map((event) => event.id.ms)),
    plainArray(lasts.map((event) => event.id.seq)),
    plainArray(chunks.map((chunk) => chunk.events.length)),
    plainArray(chunks.map((chunk) => chunk.bytes)),
    plainArray(lasts.map((event) => event.type === 'end')),
    textArray(chunks.map((chunk) => encodeEventChunk(chunk.events))),
  ];
}

/**
 * The `run_event_chunks` table: the durable archive of every run's events, one row per run per
 * archiver batch (a chunk: the run's consecutive events, at most CHUNK_MAX_BYTES), each event a
 * line of its `events` text. A row per event cost the database a tuple, an index entry and a
 * jsonb parse per event; a chunk costs that once per run per flush.
 */
export class EventArchiveRepository {
  constructor(private readonly db: Database) {}

  /** Inserts many events in one statement, as chunks (`chunkEvents`); retries are safe (see insertChunks). */
  async insert(events: readonly ArchivedEvent[]): Promise<void> {
    await this.insertChunks(chunkEvents(events));
  }

  /**
   * Inserts chunks in one statement. A retry after an ambiguous failure may send a chunk again,
   * with the same first event and as many or more events: the one with more events stays. A
   * chunk that overlaps another from elsewhere (a dead writer's tail) is kept too; `read`
   * gives each event once. Throws EventChunkTextError, before any statement, for an event
   * whose JSON text cannot be framed.
   */
  async insertChunks(chunks: readonly EventChunk[]): Promise<void> {
    if (chunks.length === 0) return;
    await this.db.query(
      `INSERT INTO run_event_chunks AS c (run_id, first_ms, first_seq, last_ms, last_seq, event_count, event_bytes, ended, events)
       SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::integer[], $4::bigint[], $5::integer[], $6::integer[], $7::integer[], $8::boolean[], $9::text[])
       ON CONFLICT (run_id, first_ms, first_seq) DO UPDATE SET
         last_ms = excluded.last_ms, last_seq = excluded.last_seq, event_count = excluded.event_count,
         event_bytes = excluded.event_bytes, ended = excluded.ended, events = excluded.events
       WHERE excluded.event_count > c.event_count`,
      chunkColumns(chunks),
    );
  }

  /**
   * Archived events of a run strictly after `after`, oldest first, each once: at most `limit`,
   * and only until their `eventBytes` reach `maxBytes` (that one included, so at least one).
   * Their JSON text is exactly as it was written. The database picks the chunks whose summed
   * counts and bytes reach the bounds, so a page of large events never crosses the wire whole;
   * when overlapping chunks made it stop short, it is asked again after the last event taken.
   */
  async read(runId: string, after: EventId | null, limit: number, maxBytes = Number.MAX_SAFE_INTEGER): Promise<RunEvent[]> {
    const page: RunEvent[] = [];
    let last = after;
    let bytes = 0;
    for (;;) {
      const from = last;
      const wantEvents = limit - page.length;
      const wantBytes = maxBytes - bytes;
      const rows = await this.chunksAfter(runId, from, wantEvents, wantBytes);
      let laterChunks = 0;
      let countedEvents = 0;
      let countedBytes = 0;
      for (const row of rows) {
        if (row.straddles !== true) {
          laterChunks += 1;
          countedEvents += Number(row.event_count);
          countedBytes += Number(row.event_bytes);
        }
        for (const event of decodeEventChunk(String(row.events))) {
          if (last !== null && compareEventIds(event.id, last) <= 0) continue; // an overlap, or at or before `after`
          page.push(event);
          last = event.id;
          bytes += eventBytes(event);
          if (page.length >= limit || bytes >= maxBytes) return page;
        }
      }
      // The database's sums stayed under both bounds: it gave every chunk there is.
      const cut = laterChunks >= wantEvents || countedEvents >= wantEvents || countedBytes >= wantBytes;
      if (!cut || last === from) return page;
    }
  }

  /**
   * The run's chunks holding events after `after`, by first event, until their counts and bytes
   * reach `limit` and `maxBytes` (the chunk that reaches them included). A chunk that begins at
   * or before `after` (`straddles`) counts for nothing: how much of it is after is not known
   * before reading. Such chunks are looked for among the STRADDLE_LOOKBACK that begin last at or
   * before `after`, so that the index finds both parts, however long the run.
   */
  private chunksAfter(runId: string, after: EventId | null, limit: number, maxBytes: number): Promise<Row[]> {
    return this.db.query(
      `SELECT first_ms, first_seq, event_count, event_bytes, events, straddles FROM (
         SELECT first_ms, first_seq, event_count, event_bytes, events, straddles,
                sum(counted_events) OVER w - counted_events AS events_before,
                sum(counted_bytes) OVER w - counted_bytes AS bytes_before
         FROM (
           SELECT first_ms, first_seq, event_count, event_bytes, events, straddles,
                  CASE WHEN straddles THEN 0 ELSE event_count END AS counted_events,
                  CASE WHEN straddles THEN 0 ELSE event_bytes END AS counted_bytes
           FROM (
             SELECT first_ms, first_seq, event_count, event_bytes, events, true AS straddles FROM (
               SELECT first_ms, first_seq, last_ms, last_seq, event_count, event_bytes, events FROM run_event_chunks
               WHERE run_id = $1 AND $2::bigint IS NOT NULL AND (first_ms, first_seq) <= ($2::bigint, $3::integer)
               ORDER BY first_ms DESC, first_seq DESC
               LIMIT ${STRADDLE_LOOKBACK}
             ) earlier
             WHERE (last_ms, last_seq) > ($2::bigint, $3::integer)
             UNION ALL
             (SELECT first_ms, first_seq, event_count, event_bytes, events, false AS straddles FROM run_event_chunks
              WHERE run_id = $1 AND ($2::bigint IS NULL OR (first_ms, first_seq) > ($2::bigint, $3::integer))
              ORDER BY first_ms, first_seq
              LIMIT $4)
           ) candidates
         ) page
         WINDOW w AS (ORDER BY first_ms, first_seq ROWS UNBOUNDED PRECEDING)
       ) sized
       WHERE events_before < $4 AND bytes_before < $5::bigint
       ORDER BY first_ms, first_seq`,
      [runId, after?.ms ?? null, after?.seq ?? 0, limit, maxBytes],
    );
  }

  /** The id of the run's archived `end` event, or null. */
  async endId(runId: string): Promise<EventId | null> {
    const rows = await this.db.query(
      `SELECT last_ms, last_seq FROM run_event_chunks WHERE run_id = $1 AND ended ORDER BY last_ms, last_seq LIMIT 1`,
      [runId],
    );
    const row = rows[0];
    return row === undefined ? null : idOf(row.last_ms, row.last_seq);
  }

  /** The run's last archived event id, or null. */
  async lastId(runId: string): Promise<EventId | null> {
    // The chunk that begins last need not end last (overlaps): every chunk of the run is looked at.
    const rows = await this.db.query(
      `SELECT last_ms, last_seq FROM run_event_chunks WHERE run_id = $1 ORDER BY last_ms DESC, last_seq DESC LIMIT 1`,
      [runId],
    );
    const row = rows[0];
    return row === undefined ? null : idOf(row.last_ms, row.last_seq);
  }
}
