import type { Database } from './database.js';

/** What one pass of the cleanup deleted. */
export interface RetentionPass {
  readonly runs: number;
  readonly events: number;
  /** Webhook deliveries of the deleted runs (whatever their state). */
  readonly webhooks: number;
  readonly idempotencyKeys: number;
  readonly instances: number;
}

/** Runs whose events are deleted, then the runs themselves, per batch. */
const RUNS_PER_BATCH = 100;
/**
 * Archive rows (chunks, of up to CHUNK_MAX_BYTES of events each) deleted per statement, so no
 * statement holds its locks for long.
 */
const CHUNKS_PER_STATEMENT = 1_000;
/** Idempotency keys cleared per statement. */
const KEYS_PER_STATEMENT = 1_000;
/** How long an Idempotency-Key means "the same request" (the contract's 24 h). */
const IDEMPOTENCY_WINDOW = `interval '24 hours'`;

/**
 * Deletes what has outlived RUN_RETENTION_DAYS, in small statements: finished runs with their
 * archived events and webhook deliveries, Idempotency-Keys past their 24 h, and the rows of
 * instances long dead. Any number of instances may run it at once (rows another one holds are
 * skipped).
 */
export class RetentionRepository {
  constructor(private readonly db: Database) {}

  /** One pass over everything older than `days` days; at most `maxBatches` batches of runs. */
  async purge(days: number, maxBatches: number): Promise<RetentionPass> {
    let runs = 0;
    let events = 0;
    let webhooks = 0;
    for (let batch = 0; batch < maxBatches; batch += 1) {
      const ids = await this.oldRuns(days);
      if (ids.length === 0) break;
      events += await this.deleteEvents(ids);
      webhooks += await this.deleteDeliveries(ids, days);
      runs += await this.deleteRuns(ids, days);
      if (ids.length < RUNS_PER_BATCH) break;
    }
    return {
      runs,
      events,
      webhooks,
      idempotencyKeys: await this.clearIdempotencyKeys(maxBatches),
      instances: await this.deleteInstances(days),
    };
  }

  private async oldRuns(days: number): Promise<string[]> {
    const rows = await this.db.query<{ id: string }>(
      `SELECT id FROM runs WHERE finished_at < now() - $1 * interval '1 day' ORDER BY finished_at LIMIT ${RUNS_PER_BATCH}`,
      [days],
    );
    return rows.map((r) => String(r.id));
  }

  /** Deletes the runs' archived chunks; returns how many events they held. */
  private async deleteEvents(runIds: readonly string[]): Promise<number> {
    let deleted = 0;
    for (;;) {
      const rows = await this.db.query<{ chunks: string; events: string | null }>(
        `WITH gone AS (
           DELETE FROM run_event_chunks WHERE (run_id, first_ms, first_seq) IN (
             SELECT run_id, first_ms, first_seq FROM run_event_chunks WHERE run_id = ANY($1::uuid[]) LIMIT ${CHUNKS_PER_STATEMENT}
           ) RETURNING event_count
         ) SELECT count(*) AS chunks, sum(event_count) AS events FROM gone`,
        [`{${runIds.join(',')}}`],
      );
      deleted += Number(rows[0]?.events ?? 0);
      if (Number(rows[0]?.chunks ?? 0) < CHUNKS_PER_STATEMENT) return deleted;
    }
  }

  /** The deliveries of those runs (one per run at most; the foreign key would cascade, this counts them). */
  private async deleteDeliveries(runIds: readonly string[], days: number): Promise<number> {
    const rows = await this.db.query<{ n: string }>(
      `WITH gone AS (
         DELETE FROM webhook_deliveries d USING runs r
         WHERE d.run_id = ANY($1::uuid[]) AND r.id = d.run_id AND r.finished_at < now() - $2 * interval '1 day'
         RETURNING 1
       ) SELECT count(*) AS n FROM gone`,
      [`{${runIds.join(',')}}`, days],
    );
    return Number(rows[0]?.n ?? 0);
  }

  private async deleteRuns(runIds: readonly string[], days: number): Promise<number> {
    const rows = await this.db.query<{ n: string }>(
      `WITH gone AS (
         DELETE FROM runs WHERE id = ANY($1::uuid[]) AND finished_at < now() - $2 * interval '1 day' RETURNING 1
       ) SELECT count(*) AS n FROM gone`,
      [`{${runIds.join(',')}}`, days],
    );
    return Number(rows[0]?.n ?? 0);
  }

  private async clearIdempotencyKeys(maxBatches: number): Promise<number> {
    let cleared = 0;
    for (let batch = 0; batch < maxBatches; batch += 1) {
      const rows = await this.db.query<{ n: string }>(
        `WITH cleared AS (
           UPDATE runs SET idempotency_key = NULL WHERE id IN (
             SELECT id FROM runs WHERE idempotency_key IS NOT NULL AND created_at < now() - ${IDEMPOTENCY_WINDOW}
             LIMIT ${KEYS_PER_STATEMENT} FOR UPDATE SKIP LOCKED
           ) RETURNING 1
         ) SELECT count(*) AS n FROM cleared`,
      );
      const n = Number(rows[0]?.n ?? 0);
      cleared += n;
      if (n < KEYS_PER_STATEMENT) break;
    }
    return cleared;
  }

  /** Instances silent for `days` days with no run left to sweep. */
  private async deleteInstances(days: number): Promise<number> {
    const rows = await this.db.query<{ n: string }>(
      `WITH gone AS (
         DELETE FROM instances i WHERE i.last_beat_at < now() - $1 * interval '1 day'
           AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.instance_id = i.id AND r.status IN ('queued', 'running'))
         RETURNING 1
       ) SELECT count(*) AS n FROM gone`,
      [days],
    );
    return Number(rows[0]?.n ?? 0);
  }
}
