import type { RunRepository } from '../db/run-repository.js';
import { ENDINGS, isFinal, type Logger, type RunRecord } from '../domain/index.js';
import type { EventLog } from '../streaming/event-log.js';

/** A final run still without an `end` this long after it finished had its instance die (ms). */
const DEFAULT_GRACE_MS = 10_000;

export interface RunEndRecoveryDeps {
  readonly runs: Pick<RunRepository, 'get' | 'interruptInstance'>;
  readonly eventLog: Pick<EventLog, 'ensureEnd'>;
  readonly logger: Logger;
  /** How long after a run finished its missing `end` counts as lost (ms); default 10000. */
  readonly graceMs?: number;
}

/**
 * Writes the `end` event a run's instance died before writing: the one place that does, for a
 * restarted instance's leftovers, for the runs the sweeper ends, and for readers of such a run.
 * Idempotent, as the archive keeps one `end` per run.
 */
export class RunEndRecovery {
  private readonly graceMs: number;

  constructor(private readonly deps: RunEndRecoveryDeps) {
    this.graceMs = deps.graceMs ?? DEFAULT_GRACE_MS;
  }

  /**
   * Ends every queued or running run recorded for `instanceId` `interrupted` (instance_lost),
   * each with its `end`; resolves with how many it ended. A database failure rejects: the
   * caller decides (at boot it stops start-up).
   */
  async interruptInstance(instanceId: string): Promise<number> {
    const ended = await this.deps.runs.interruptInstance(instanceId, ENDINGS.instanceLost.error);
    await this.writeEnds(ended);
    return ended.length;
  }

  /**
   * Writes the `end` of each run, already final in the database, that another instance left
   * running (the sweeper's). A run whose `end` cannot be written now is logged; readers
   * write it later (`endIfMissing`).
   */
  async writeEnds(runs: readonly RunRecord[]): Promise<void> {
    for (const run of runs) {
      try {
        await this.deps.eventLog.ensureEnd(run.id, endData(run), run.finishedAt?.getTime() ?? Date.now());
      } catch (error) {
        this.deps.logger.warn('could not write the end of a run another instance left; readers retry', { run_id: run.id, error });
      }
    }
  }

  /**
   * Writes the `end` of a final run that finished more than `graceMs` ago without one; true
   * once the archive holds its `end` (a reader should read again). A database failure is
   * logged and answers false: the caller checks again later.
   */
  async endIfMissing(run: { readonly id: string; readonly accountId: string }): Promise<boolean> {
    try {
      const current = await this.deps.runs.get(run.accountId, run.id);
      if (current === null || !isFinal(current.status) || current.finishedAt === null) return false;
      if (Date.now() - current.finishedAt.getTime() < this.graceMs) return false;
      await this.deps.eventLog.ensureEnd(run.id, endData(current), current.finishedAt.getTime());
      return true;
    } catch (error) {
      this.deps.logger.warn('could not write the missing end of a run; a later check retries', { run_id: run.id, error });
      return false;
    }
  }
}

/** The `end` event's data for a final run. */
function endData(run: RunRecord): { status: string; error?: unknown } {
  return run.error === null ? { status: run.status } : { status: run.status, error: run.error };
}
