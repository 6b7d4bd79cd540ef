import type { TierLimits } from '../config/tier-limits.js';
import { DependencyUnavailableError, type NewRun } from '../domain/index.js';
import { GroupCommit } from '../concurrency/group-commit.js';
import { type AdmitResult, type EncodedRun, encodeRun, type RunRepository } from './run-repository.js';

/**
 * Most admissions per statement. Each takes its account's advisory lock until the batch
 * commits; Postgres's shared lock table holds max_locks_per_transaction × max_connections
 * (64 × 100 by default) for all sessions, so many instances' batches of 256 could exhaust it.
 */
const DEFAULT_MAX_BATCH = 64;
/** A batch stops growing past this many bytes of encoded runs (one jsonb parameter). */
const MAX_BATCH_BYTES = 8 * 1024 * 1024;

interface Admission {
  readonly run: NewRun;
  readonly encoded: EncodedRun;
  readonly tierLimits: TierLimits;
  readonly sessionMaxInflight: number;
}

export interface AdmissionBatcherOptions {
  readonly runs: Pick<RunRepository, 'admit' | 'admitMany'>;
  /** Told when the database refused a batch and its admissions are retried one at a time. */
  readonly onBatchRefused: (error: unknown, batchSize: number) => void;
  /** Most admissions per statement; default 64. */
  readonly maxBatch?: number;
}

/**
 * Admits runs by group commit: the admissions submitted together, and those that arrive
 * while the previous batch is written, go to the database as one statement, one batch at a
 * time. Each caller gets what RunRepository.admit would give it. A batch the database refuses
 * for its content is retried one admission at a time, so only the one at fault fails; an
 * unreachable database fails every admission of the batch.
 */
export class AdmissionBatcher {
  private readonly batches: GroupCommit<Admission, AdmitResult>;

  constructor(options: AdmissionBatcherOptions) {
    const { runs } = options;
    this.batches = new GroupCommit<Admission, AdmitResult>({
      commitBatch: (batch) => {
        const { tierLimits, sessionMaxInflight } = batch[0] as Admission;
        return runs.admitMany(
          batch.map((a) => a.encoded),
          tierLimits,
          sessionMaxInflight,
        );
      },
      commitOne: (a) => runs.admit(a.run, a.tierLimits, a.sessionMaxInflight),
      isUnavailable: (error) => error instanceof DependencyUnavailableError,
      maxBatch: options.maxBatch ?? DEFAULT_MAX_BATCH,
      maxBatchBytes: MAX_BATCH_BYTES,
      bytesOf: (a) => a.encoded.length,
      sameBatch: (a, b) => a.tierLimits === b.tierLimits && a.sessionMaxInflight === b.sessionMaxInflight,
      closedError: () => new DependencyUnavailableError('database'),
      onBatchRefused: options.onBatchRefused,
    });
  }

  /** Same contract as RunRepository.admit. */
  async admit(run: NewRun, tierLimits: TierLimits, sessionMaxInflight: number): Promise<AdmitResult> {
    return this.batches.submit({ run, encoded: encodeRun(run), tierLimits, sessionMaxInflight });
  }

  /** Refuses new admissions and resolves once every submitted one is written. Idempotent. */
  close(): Promise<void> {
    return this.batches.close();
  }
}
