import { DependencyUnavailableError, type RunError, type RunRecord, type RunStatus } from '../domain/index.js';
import { GroupCommit } from '../concurrency/group-commit.js';
import { type EncodedStatusChange, encodeStatusChange, type RunRepository } from './run-repository.js';

/** Most status changes per statement. */
const DEFAULT_MAX_BATCH = 256;
/** A batch stops growing past this many bytes of encoded changes (outputs can be large). */
const MAX_BATCH_BYTES = 8 * 1024 * 1024;

interface StatusChange {
  readonly id: string;
  readonly from: RunStatus;
  readonly to: RunStatus;
  readonly fields: { error?: RunError; output?: unknown };
  readonly encoded: EncodedStatusChange;
}

export interface TransitionBatcherOptions {
  readonly runs: Pick<RunRepository, 'transition' | 'transitionMany'>;
  /** Told when the database refused a batch and its changes are retried one at a time. */
  readonly onBatchRefused: (error: unknown, batchSize: number) => void;
  /** Most status changes per statement; default 256. */
  readonly maxBatch?: number;
}

/**
 * Writes run status changes by group commit: the changes submitted together, and those
 * that arrive while the previous batch is written, go to the database as one conditional
 * UPDATE, one batch at a time. Each caller gets what RunRepository.transition would give it
 * (null when the run was no longer in `from`). A batch the database refuses for its content is
 * retried one change at a time; an unreachable database fails every change of the batch.
 */
export class TransitionBatcher {
  private readonly batches: GroupCommit<StatusChange, RunRecord | null>;

  constructor(options: TransitionBatcherOptions) {
    const { runs } = options;
    this.batches = new GroupCommit<StatusChange, RunRecord | null>({
      commitBatch: (batch) => runs.transitionMany(batch.map((c) => c.encoded)),
      commitOne: (c) => runs.transition(c.id, c.from, c.to, c.fields),
      isUnavailable: (error) => error instanceof DependencyUnavailableError,
      maxBatch: options.maxBatch ?? DEFAULT_MAX_BATCH,
      maxBatchBytes: MAX_BATCH_BYTES,
      bytesOf: (c) => c.encoded.length,
      closedError: () => new DependencyUnavailableError('database'),
      onBatchRefused: options.onBatchRefused,
    });
  }

  /** Same contract as RunRepository.transition (an invalid transition rejects before any write). */
  async transition(
    id: string,
    from: RunStatus,
    to: RunStatus,
    fields: { error?: RunError; output?: unknown } = {},
  ): Promise<RunRecord | null> {
    return this.batches.submit({ id, from, to, fields, encoded: encodeStatusChange(id, from, to, fields) });
  }

  /** Refuses new changes and resolves once every submitted one is written. Idempotent. */
  close(): Promise<void> {
    return this.batches.close();
  }
}
