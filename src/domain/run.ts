import type { ActiveStatus, RunStatus } from './run-status.js';
import type { RunWebhook } from './webhook.js';

/** Why a run failed, as its record and its `error`/`end` events show it. */
export interface RunError {
  readonly code: string;
  readonly message: string;
}

/** A run as the database holds it: one row of `runs`. */
export interface RunRecord {
  readonly id: string;
  readonly accountId: string;
  readonly agent: string;
  readonly status: RunStatus;
  readonly sessionId: string | null;
  readonly input: unknown;
  readonly model: string | null;
  readonly metadata: unknown;
  readonly timeoutMs: number;
  /** The instance that runs it (INSTANCE_ID). */
  readonly instanceId: string;
  readonly createdAt: Date;
  readonly startedAt: Date | null;
  readonly finishedAt: Date | null;
  readonly error: RunError | null;
  /** Data of the run's last `message` event; undefined when it had none. */
  readonly output: unknown;
  /** The webhook the run carries and its delivery; undefined when it has none. */
  readonly webhook?: RunWebhook;
}

/** A run about to be admitted: what the admission statement inserts. */
export interface NewRun {
  readonly id: string;
  readonly accountId: string;
  readonly agent: string;
  readonly status: ActiveStatus;
  readonly sessionId: string | null;
  readonly input: unknown;
  readonly model: string | null;
  readonly metadata: unknown;
  readonly timeoutMs: number;
  readonly idempotencyKey: string | null;
  /**
   * A hash of the request's meaningful fields, kept with an Idempotency-Key: a repeat of the
   * key with another hash is refused. Null without a key.
   */
  readonly requestHash: string | null;
  readonly instanceId: string;
  /** Where the run record is POSTed when the run ends (a checked, normalised http(s) URL); null or absent: nowhere. */
  readonly webhookUrl?: string | null;
}
