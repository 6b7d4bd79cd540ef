import { setTimeout as sleep } from 'node:timers/promises';
import { DependencyUnavailableError, type Logger, type RunError, type RunRecord, type RunStatus } from '../domain/index.js';
import type { RunRepository } from '../db/run-repository.js';

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5_000;

/**
 * Writes a run's status changes, waiting out a database outage: a status change is retried
 * with capped backoff until it is recorded, so no run is left `running` in the database (with
 * its lease held) because one write failed. `stop()` ends the waiting (shutdown).
 */
export class RunRecorder {
  private readonly stopping = new AbortController();

  constructor(
    /** The repository, or a TransitionBatcher over it. */
    private readonly runs: Pick<RunRepository, 'transition'>,
    private readonly logger: Logger,
  ) {}

  /** The updated run, or null when it was no longer in `from` (another path ended it). */
  async transition(
    id: string,
    from: RunStatus,
    to: RunStatus,
    fields: { error?: RunError; output?: unknown } = {},
  ): Promise<RunRecord | null> {
    for (let attempt = 0; ; attempt += 1) {
      try {
        return await this.runs.transition(id, from, to, fields);
      } catch (error) {
        if (!(error instanceof DependencyUnavailableError) || this.stopping.signal.aborted) throw error;
        if (attempt % 10 === 0) this.logger.warn('database unavailable; retrying a run status change', { run_id: id, to, attempt });
        try {
          await sleep(Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** attempt), undefined, { signal: this.stopping.signal });
        } catch {
          throw error; // stopped while waiting: give up with the database's error
        }
      }
    }
  }

  /** Stops waiting for the database: pending and later retries fail at once. */
  stop(): void {
    this.stopping.abort();
  }
}
