import type { RunRepository } from '../db/run-repository.js';
import { isFinal, type RunRecord } from '../domain/index.js';
import type { EventLog } from '../streaming/event-log.js';

/** The first look at the database after the one at the start (ms); each further one doubles. */
const CHECK_FIRST_MS = 2_000;
const CHECK_MAX_MS = 30_000;

export interface RunWaiterDeps {
  readonly runs: Pick<RunRepository, 'get'>;
  readonly eventLog: Pick<EventLog, 'subscribe'>;
}

/**
 * Waits for a run to end, on whichever instance it runs: follows its live events for the
 * `end` (through the event store, so the run's own instance tells every other), then reads its
 * final record. The database is also read at the start and at growing intervals, so a missed
 * `end` (a Redis blip, a run swept while nobody wrote one yet) costs time, not the answer.
 */
export class RunWaiter {
  constructor(private readonly deps: RunWaiterDeps) {}

  /**
   * The run's record once it is final; or as it stands when `timeoutMs` passed or `signal`
   * aborted first (the client left). Holds nothing once it resolves. Rejects when the database
   * cannot be read.
   */
  async wait(run: Pick<RunRecord, 'id' | 'accountId'>, timeoutMs: number, signal: AbortSignal): Promise<RunRecord | null> {
    let wake: () => void = () => undefined;
    let woken = false;
    const onWake = () => {
      woken = true;
      wake();
    };
    // Subscribed before the first read, so an `end` between the two is not missed.
    const unsubscribe = this.deps.eventLog.subscribe(run.id, null, (event) => {
      if (event.type === 'end') onWake();
    });
    signal.addEventListener('abort', onWake);
    const deadlineMs = Date.now() + timeoutMs;
    let timer: NodeJS.Timeout | undefined;
    try {
      for (let checkMs = CHECK_FIRST_MS; ; checkMs = Math.min(CHECK_MAX_MS, checkMs * 2)) {
        woken = false;
        const current = await this.deps.runs.get(run.accountId, run.id);
        if (current === null || isFinal(current.status) || signal.aborted) return current;
        const leftMs = deadlineMs - Date.now();
        if (leftMs <= 0) return current;
        if (woken) continue; // the `end` came while the database was read
        await new Promise<void>((resolve) => {
          wake = resolve;
          timer = setTimeout(resolve, Math.min(checkMs, leftMs));
        });
        clearTimeout(timer);
        wake = () => undefined;
      }
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onWake);
      unsubscribe();
    }
  }
}
