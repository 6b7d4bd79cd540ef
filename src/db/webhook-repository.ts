import type { RunRecord } from '../domain/index.js';
import type { Database, Row } from './database.js';
import { toRun } from './run-repository.js';

/** A delivery claimed for one attempt, until its lease ends. */
export interface ClaimedDelivery {
  /** The delivery's id: the `webhook-id` of every attempt, so receivers dedupe. */
  readonly id: string;
  readonly url: string;
  /** This attempt's number, from 1; recording its outcome needs it (a later claim has another). */
  readonly attempt: number;
  /** Since the run ended, by the database's clock (ms). */
  readonly ageMs: number;
  /** The run, final. */
  readonly run: RunRecord;
}

/** What an attempt came to: delivered, failed for good, or to be retried after `retryInMs`. */
export type AttemptRecord = { readonly lastStatus: number | null; readonly lastError: string | null } & (
  { readonly state: 'delivered' | 'failed' } | { readonly state: 'pending'; readonly retryInMs: number }
);

/** Longest `last_error` kept, in characters. */
const ERROR_MAX = 500;

/**
 * The `webhook_deliveries` table: deliveries are created by a trigger when a run with a
 * webhook ends (migration 7); any number of instances claim due ones at once (rows another
 * holds are skipped), each claim a lease that a crash lets run out.
 */
export class WebhookRepository {
  constructor(private readonly db: Database) {}

  /**
   * Claims up to `limit` due deliveries for `instanceId`, oldest due first, for `leaseMs`: each
   * counts an attempt and is not due again before the lease ends. Each is returned to exactly
   * one caller, however many claim at once.
   */
  async claim(instanceId: string, limit: number, leaseMs: number): Promise<ClaimedDelivery[]> {
    const rows = await this.db.query(
      `WITH due AS (
         SELECT run_id FROM webhook_deliveries
         WHERE state = 'pending' AND due_at <= now()
         ORDER BY due_at LIMIT $3
         FOR UPDATE SKIP LOCKED
       )
       UPDATE webhook_deliveries d
       SET attempts = d.attempts + 1, claimed_by = $1, due_at = now() + $2::integer * interval '1 millisecond'
       FROM due
       WHERE d.run_id = due.run_id AND d.state = 'pending' AND d.due_at <= now()
       RETURNING d.id, d.url, d.attempts, (extract(epoch FROM now() - d.created_at) * 1000)::bigint AS age_ms,
         (SELECT to_jsonb(r) FROM runs r WHERE r.id = d.run_id) AS run`,
      [instanceId, leaseMs, limit],
    );
    return rows.map((row) => ({
      id: String(row.id),
      url: String(row.url),
      attempt: Number(row.attempts),
      ageMs: Math.max(0, Number(row.age_ms)),
      run: toRun(row.run as Row),
    }));
  }

  /**
   * Records how attempt `attempt` of the run's delivery went; false (nothing written) when that
   * attempt's lease was lost: another claim made a later attempt, or the delivery is over.
   */
  async record(runId: string, attempt: number, outcome: AttemptRecord): Promise<boolean> {
    const retryInMs = outcome.state === 'pending' ? Math.max(0, Math.round(outcome.retryInMs)) : 0;
    const rows = await this.db.query(
      `UPDATE webhook_deliveries
       SET state = $3::text, last_status = $4::integer, last_error = $5::text, claimed_by = NULL,
         due_at = CASE WHEN $3::text = 'pending' THEN now() + $6::integer * interval '1 millisecond' ELSE due_at END,
         finished_at = CASE WHEN $3::text = 'pending' THEN NULL ELSE now() END
       WHERE run_id = $1 AND attempts = $2::integer AND state = 'pending'
       RETURNING 1 AS ok`,
      [runId, attempt, outcome.state, outcome.lastStatus, outcome.lastError?.slice(0, ERROR_MAX) ?? null, retryInMs],
    );
    return rows.length > 0;
  }

  /**
   * Makes the deliveries `instanceId` holds claims on due now (its previous process died mid
   * attempt: a restart with the same INSTANCE_ID retries them without waiting for the leases);
   * returns how many.
   */
  async releaseClaims(instanceId: string): Promise<number> {
    const rows = await this.db.query(
      `UPDATE webhook_deliveries SET due_at = now(), claimed_by = NULL
       WHERE state = 'pending' AND claimed_by = $1
       RETURNING 1 AS ok`,
      [instanceId],
    );
    return rows.length;
  }
}
