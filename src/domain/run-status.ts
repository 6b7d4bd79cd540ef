/**
 * The run status state machine. The same table is written to the database
 * (`run_transitions`), where a trigger refuses any other change, and every status write is a
 * conditional `UPDATE ... WHERE status = $from`.
 */
export const RUN_STATUSES = ['queued', 'running', 'completed', 'failed', 'cancelled', 'timed_out', 'interrupted'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];
export type FinalStatus = Exclude<RunStatus, 'queued' | 'running'>;
export type ActiveStatus = Extract<RunStatus, 'queued' | 'running'>;

export const TRANSITIONS: Readonly<Record<RunStatus, readonly RunStatus[]>> = {
  // A queued run never completes or times out: it has not started.
  queued: ['running', 'failed', 'cancelled', 'interrupted'],
  running: ['completed', 'failed', 'cancelled', 'timed_out', 'interrupted'],
  completed: [],
  failed: [],
  cancelled: [],
  timed_out: [],
  interrupted: [],
};

export function canTransition(from: RunStatus, to: RunStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

export function isFinal(status: RunStatus): status is FinalStatus {
  switch (status) {
    case 'queued':
    case 'running':
      return false;
    case 'completed':
    case 'failed':
    case 'cancelled':
    case 'timed_out':
    case 'interrupted':
      return true;
    default: {
      const unreachable: never = status;
      throw new Error(`unknown status ${String(unreachable)}`);
    }
  }
}

/** Every (from, to) pair, for the migration that fills `run_transitions`. */
export function transitionPairs(): Array<readonly [RunStatus, RunStatus]> {
  return RUN_STATUSES.flatMap((from) => TRANSITIONS[from].map((to) => [from, to] as const));
}
