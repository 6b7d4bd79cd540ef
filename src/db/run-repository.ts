import type { TierLimits } from '../config/tier-limits.js';
import { canTransition, isFinal, type NewRun, RUN_STATUSES, type RunError, type RunRecord, type RunStatus } from '../domain/index.js';
import type { Database, Row } from './database.js';
import { WEBHOOK_DELIVERY_COLUMN, webhookOf } from './webhook-view.js';

/** What an Idempotency-Key names: its first run, or a refusal when that run's request differed. */
export type IdempotentMatch = { readonly outcome: 'existing'; readonly run: RunRecord } | { readonly outcome: 'key_reused' };

export type AdmitResult =
  | { readonly outcome: 'created'; readonly run: RunRecord }
  | IdempotentMatch
  | { readonly outcome: 'account_limit' | 'session_limit'; readonly limit: number; readonly active: number }
  | { readonly outcome: 'no_account' };

export interface RunFilter {
  readonly status?: RunStatus;
  readonly agent?: string;
  readonly sessionId?: string;
}

export interface RunCursor {
  readonly createdAt: Date;
  readonly id: string;
}

/** A run as the operator's dashboard lists it: no input, metadata or output (bounded size). */
export interface RunSummary {
  readonly id: string;
  readonly accountId: string;
  readonly accountName: string;
  readonly agent: string;
  readonly status: RunStatus;
  readonly sessionId: string | null;
  readonly instanceId: string;
  readonly createdAt: Date;
  readonly startedAt: Date | null;
  readonly finishedAt: Date | null;
  readonly errorCode: string | null;
}

function toDate(value: unknown): Date | null {
  if (value === null || value === undefined) return null;
  return value instanceof Date ? value : new Date(String(value));
}

/** A run's columns and its webhook delivery's (for `toRun`), for a SELECT over `runs`. */
const RUN_COLUMNS = `runs.*, ${WEBHOOK_DELIVERY_COLUMN}`;

/** Maps a `runs` row, from a plain SELECT or from `to_jsonb(run)`, to a RunRecord. */
export function toRun(row: Row): RunRecord {
  const webhook = webhookOf(row);
  return {
    id: String(row.id),
    accountId: String(row.account_id),
    agent: String(row.agent),
    status: row.status as RunStatus,
    sessionId: (row.session_id as string | null) ?? null,
    input: row.input ?? null,
    model: (row.model as string | null) ?? null,
    metadata: row.metadata ?? null,
    timeoutMs: Number(row.timeout_ms),
    instanceId: String(row.instance_id),
    createdAt: toDate(row.created_at) as Date,
    startedAt: toDate(row.started_at),
    finishedAt: toDate(row.finished_at),
    error: (row.error as RunError | null) ?? null,
    output: row.output === null || row.output === undefined ? undefined : row.output,
    ...(webhook === undefined ? {} : { webhook }),
  };
}

const json = (value: unknown): string | null => (value === undefined ? null : JSON.stringify(value));

type AdmitRow = { outcome: string; run: Row | null; limit_value: number | null; active: number | null };

function toAdmitResult(row: AdmitRow): AdmitResult {
  switch (row.outcome) {
    case 'created':
    case 'existing':
      return { outcome: row.outcome, run: toRun(row.run as Row) };
    case 'account_limit':
    case 'session_limit':
      return { outcome: row.outcome, limit: Number(row.limit_value), active: Number(row.active) };
    case 'no_account':
    case 'key_reused':
      return { outcome: row.outcome };
    default:
      throw new Error(`agentd_admit returned unknown outcome ${row.outcome}`);
  }
}

function assertTransition(from: RunStatus, to: RunStatus): void {
  if (!canTransition(from, to)) throw new Error(`invalid transition ${from} -> ${to}`);
}

/** A NewRun as one element of the JSON array admitMany sends; its length bounds a batch. */
export type EncodedRun = string & { readonly __encoded: 'run' };

/**
 * Encodes a run for admitMany. An undefined input or metadata is left out (SQL NULL), like
 * admit() sends it; null is JSON null.
 */
export function encodeRun(run: NewRun): EncodedRun {
  return JSON.stringify({
    id: run.id,
    account_id: run.accountId,
    agent: run.agent,
    status: run.status,
    session_id: run.sessionId,
    input: run.input,
    model: run.model,
    metadata: run.metadata,
    timeout_ms: run.timeoutMs,
    idempotency_key: run.idempotencyKey,
    request_hash: run.requestHash,
    instance_id: run.instanceId,
    webhook: run.webhookUrl ?? undefined,
  }) as EncodedRun;
}

/** A status change as one element of the JSON array transitionMany sends; its length bounds a batch. */
export type EncodedStatusChange = string & { readonly __encoded: 'status change' };

/** Encodes a status change for transitionMany; throws for a transition the state machine forbids. */
export function encodeStatusChange(
  id: string,
  from: RunStatus,
  to: RunStatus,
  fields: { error?: RunError; output?: unknown } = {},
): EncodedStatusChange {
  assertTransition(from, to);
  return JSON.stringify({
    id,
    from,
    to,
    started: to === 'running',
    finished: isFinal(to),
    error: fields.error,
    output: fields.output,
  }) as EncodedStatusChange;
}

/** The `runs` and `run_leases` tables: admission, status transitions and reads. */
export class RunRepository {
  constructor(private readonly db: Database) {}

  /**
   * Admits a run in one round trip: Idempotency-Key check (its first run, or 'key_reused'
   * when that run's request hash differs), the tier and session limits (counted under the
   * account's advisory lock) and the insert with its lease (and its webhook). A batch of one.
   */
  async admit(run: NewRun, tierLimits: TierLimits, sessionMaxInflight: number): Promise<AdmitResult> {
    const [result] = await this.admitMany([encodeRun(run)], tierLimits, sessionMaxInflight);
    return result as AdmitResult;
  }

  /**
   * Admits a batch of runs in one statement, each exactly as admit() would, in order: a run
   * counts against the limits of those after it, and a repeated Idempotency-Key gets the run
   * created earlier in the batch. A refusal affects only its own request. One result per run.
   */
  async admitMany(runs: readonly EncodedRun[], tierLimits: TierLimits, sessionMaxInflight: number): Promise<AdmitResult[]> {
    const rows = await this.db.query<AdmitRow & { ord: number }>(`SELECT * FROM agentd_admit_many($1::jsonb, $2::jsonb, $3)`, [
      `[${runs.join(',')}]`,
      JSON.stringify(Object.fromEntries(tierLimits)),
      sessionMaxInflight,
    ]);
    const results = new Array<AdmitResult | undefined>(runs.length);
    for (const row of rows) results[Number(row.ord) - 1] = toAdmitResult(row);
    if (results.includes(undefined)) throw new Error(`agentd_admit_many returned ${rows.length} rows for ${runs.length} runs`);
    return results as AdmitResult[];
  }

  /**
   * Moves a run from `from` to `to` if it is still in `from`; returns the updated run, or
   * null when it was not (another path got there first). Final statuses set finished_at and
   * release the lease (trigger).
   */
  async transition(
    id: string,
    from: RunStatus,
    to: RunStatus,
    fields: { error?: RunError; output?: unknown } = {},
  ): Promise<RunRecord | null> {
    assertTransition(from, to);
    const rows = await this.db.query(
      `UPDATE runs SET status = $3,
         started_at = CASE WHEN $4 THEN date_trunc('milliseconds', clock_timestamp()) ELSE started_at END,
         finished_at = CASE WHEN $5 THEN date_trunc('milliseconds', clock_timestamp()) ELSE finished_at END,
         error = COALESCE($6::jsonb, error),
         output = COALESCE($7::jsonb, output)
       WHERE id = $1 AND status = $2
       RETURNING *`,
      [id, from, to, to === 'running', isFinal(to), json(fields.error), json(fields.output)],
    );
    return rows[0] === undefined ? null : toRun(rows[0]);
  }

  /**
   * Applies a batch of status changes in one statement, each as transition() would: the
   * updated run, or null for one that was no longer in its `from`. Of two changes to the same
   * run in one batch, at most one applies.
   */
  async transitionMany(changes: readonly EncodedStatusChange[]): Promise<Array<RunRecord | null>> {
    const rows = await this.db.query(
      `WITH c AS (
         SELECT e.n::integer AS ord, (e.change ->> 'id')::uuid AS id, e.change ->> 'from' AS from_status,
                e.change ->> 'to' AS to_status, (e.change ->> 'started')::boolean AS started,
                (e.change ->> 'finished')::boolean AS finished, e.change -> 'error' AS error, e.change -> 'output' AS output
         FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e(change, n)
       )
       UPDATE runs SET status = c.to_status,
         started_at = CASE WHEN c.started THEN date_trunc('milliseconds', clock_timestamp()) ELSE runs.started_at END,
         finished_at = CASE WHEN c.finished THEN date_trunc('milliseconds', clock_timestamp()) ELSE runs.finished_at END,
         error = COALESCE(c.error, runs.error),
         output = COALESCE(c.output, runs.output)
       FROM c
       WHERE runs.id = c.id AND runs.status = c.from_status
       RETURNING c.ord, runs.*`,
      [`[${changes.join(',')}]`],
    );
    const updated = new Array<RunRecord | null>(changes.length).fill(null);
    for (const row of rows) updated[Number(row.ord) - 1] = toRun(row);
    return updated;
  }

  /** The run if it exists and belongs to the account. */
  async get(accountId: string, id: string): Promise<RunRecord | null> {
    const rows = await this.db.query(`SELECT ${RUN_COLUMNS} FROM runs WHERE id = $1 AND account_id = $2`, [id, accountId]);
    return rows[0] === undefined ? null : toRun(rows[0]);
  }

  /**
   * The account's run created with this Idempotency-Key within 24 h, by the same rule as
   * admit(): 'existing' when its request hash is `requestHash` (or either is unknown),
   * 'key_reused' when it differs; null when the key names no run.
   */
  async findByIdempotencyKey(accountId: string, key: string, requestHash: string | null): Promise<IdempotentMatch | null> {
    const rows = await this.db.query(
      `SELECT ${RUN_COLUMNS}, request_hash IS NOT NULL AND $3::text IS NOT NULL AND request_hash <> $3 AS key_reused FROM runs
       WHERE account_id = $1 AND idempotency_key = $2 AND created_at > now() - interval '24 hours'
       ORDER BY created_at DESC LIMIT 1`,
      [accountId, key, requestHash],
    );
    const row = rows[0];
    if (row === undefined) return null;
    return row.key_reused === true ? { outcome: 'key_reused' } : { outcome: 'existing', run: toRun(row) };
  }

  /** The account's runs, newest first, strictly after `cursor` in that order. */
  async list(accountId: string, filter: RunFilter, limit: number, cursor: RunCursor | null): Promise<RunRecord[]> {
    const rows = await this.db.query(
      `SELECT ${RUN_COLUMNS} FROM runs
       WHERE account_id = $1
         AND ($2::text IS NULL OR status = $2)
         AND ($3::text IS NULL OR agent = $3)
         AND ($4::text IS NULL OR session_id = $4)
         AND ($5::timestamptz IS NULL OR (created_at, id) < ($5::timestamptz, $6::uuid))
       ORDER BY created_at DESC, id DESC
       LIMIT $7`,
      [
        accountId,
        filter.status ?? null,
        filter.agent ?? null,
        filter.sessionId ?? null,
        cursor?.createdAt.toISOString() ?? null,
        cursor?.id ?? null,
        limit,
      ],
    );
    return rows.map(toRun);
  }

  /** Admin only: the run, whichever account it belongs to. */
  async getAny(id: string): Promise<RunRecord | null> {
    const rows = await this.db.query(`SELECT ${RUN_COLUMNS} FROM runs WHERE id = $1`, [id]);
    return rows[0] === undefined ? null : toRun(rows[0]);
  }

  /** Admin only: the `limit` newest runs of every account, newest first (index `runs_created`). */
  async newest(limit: number): Promise<RunSummary[]> {
    const rows = await this.db.query(
      `SELECT r.id, r.account_id, a.name AS account_name, r.agent, r.status, r.session_id, r.instance_id,
              r.created_at, r.started_at, r.finished_at, r.error ->> 'code' AS error_code
       FROM (SELECT id, account_id, agent, status, session_id, instance_id, created_at, started_at, finished_at, error
             FROM runs ORDER BY created_at DESC, id DESC LIMIT $1) r
       JOIN accounts a ON a.id = r.account_id
       ORDER BY r.created_at DESC, r.id DESC`,
      [limit],
    );
    return rows.map((r) => ({
      id: String(r.id),
      accountId: String(r.account_id),
      accountName: String(r.account_name),
      agent: String(r.agent),
      status: r.status as RunStatus,
      sessionId: (r.session_id as string | null) ?? null,
      instanceId: String(r.instance_id),
      createdAt: toDate(r.created_at) as Date,
      startedAt: toDate(r.started_at),
      finishedAt: toDate(r.finished_at),
      errorCode: (r.error_code as string | null) ?? null,
    }));
  }

  /**
   * Admin only: runs by status on every instance: all queued and running ones, and those that
   * finished within the last `finishedWithinMs` (both read through partial indexes, so the
   * cost follows the active and recent runs, not the table). Statuses with none are 0.
   */
  async countByStatus(finishedWithinMs: number): Promise<Record<RunStatus, number>> {
    const rows = await this.db.query<{ status: RunStatus; n: number }>(
      `SELECT status, count(*)::int AS n FROM runs WHERE status IN ('queued', 'running') GROUP BY status
       UNION ALL
       SELECT status, count(*)::int AS n FROM runs
       WHERE finished_at IS NOT NULL AND finished_at > now() - $1 * interval '1 millisecond' GROUP BY status`,
      [finishedWithinMs],
    );
    const counts = Object.fromEntries(RUN_STATUSES.map((status) => [status, 0])) as Record<RunStatus, number>;
    for (const row of rows) counts[row.status] += Number(row.n);
    return counts;
  }

  /**
   * Ends every queued or running run recorded for `instanceId` as `interrupted` (used at
   * boot for a restarted instance's leftovers). Returns the runs it ended.
   */
  async interruptInstance(instanceId: string, error: RunError): Promise<RunRecord[]> {
    const ended: RunRecord[] = [];
    for (const from of ['queued', 'running'] as const) {
      const rows = await this.db.query(
        `UPDATE runs SET status = 'interrupted', error = $3::jsonb,
           finished_at = date_trunc('milliseconds', clock_timestamp())
         WHERE instance_id = $1 AND status = $2
         RETURNING *`,
        [instanceId, from, JSON.stringify(error)],
      );
      ended.push(...rows.map(toRun));
    }
    return ended;
  }

  /**
   * Every lease, on any instance, of the `maxAccounts` accounts holding the most, with the
   * account's tier: the holders of the account and session limits.
   */
  async leaseHolders(
    maxAccounts: number,
  ): Promise<Array<{ accountId: string; accountName: string; tier: string; sessionId: string | null; runId: string }>> {
    const rows = await this.db.query(
      `WITH top AS (SELECT account_id FROM run_leases GROUP BY account_id ORDER BY count(*) DESC, account_id LIMIT $1)
       SELECT l.account_id, a.name, a.tier, l.session_id, l.run_id
       FROM run_leases l JOIN accounts a ON a.id = l.account_id
       WHERE l.account_id IN (SELECT account_id FROM top)
       ORDER BY l.created_at`,
      [maxAccounts],
    );
    return rows.map((r) => ({
      accountId: String(r.account_id),
      accountName: String(r.name),
      tier: String(r.tier),
      sessionId: (r.session_id as string | null) ?? null,
      runId: String(r.run_id),
    }));
  }

  /** Active leases, for the capacity view: per account and per session. */
  async countLeases(instanceId: string): Promise<{ accounts: number; sessions: number; runs: number }> {
    const rows = await this.db.query<{ accounts: string; sessions: string; runs: string }>(
      `SELECT count(DISTINCT account_id) AS accounts,
              count(DISTINCT (account_id, session_id)) FILTER (WHERE session_id IS NOT NULL) AS sessions,
              count(*) AS runs
       FROM run_leases WHERE instance_id = $1`,
      [instanceId],
    );
    const row = rows[0];
    return { accounts: Number(row?.accounts ?? 0), sessions: Number(row?.sessions ?? 0), runs: Number(row?.runs ?? 0) };
  }
}
