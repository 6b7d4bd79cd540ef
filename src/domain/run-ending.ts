import type { RunError } from './run.js';
import type { FinalStatus } from './run-status.js';

/** How a run ended: its final status and, except for success and cancel, why. */
export type RunEnding =
  | { readonly status: 'completed' }
  | { readonly status: 'cancelled' }
  | { readonly status: Exclude<FinalStatus, 'completed' | 'cancelled'>; readonly error: RunError };

/** The AbortSignal reason the runtime uses; carries the ending the abort stands for. */
export class RunAbort extends Error {
  constructor(readonly ending: RunEnding) {
    // No stack: the reason lives as long as the run's signal (an agent ignoring its abort may
    // hold it for long), and a captured stack keeps the frames' closures alive — for a cancel,
    // the HTTP request and response that asked for it.
    const stackTraceLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      super(`run aborted: ${ending.status}`);
    } finally {
      Error.stackTraceLimit = stackTraceLimit;
    }
    this.name = 'RunAbort';
  }
}

/** Contract error codes an agent may end its run with by throwing a RunFailure. */
export type RunFailureCode = 'provider_error' | 'provider_timeout';

/**
 * Thrown by an agent (or what it calls) to fail its run with a contract code other than
 * `agent_error`; the message becomes the run's error message.
 */
export class RunFailure extends Error {
  constructor(
    readonly runErrorCode: RunFailureCode,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export const ENDINGS = {
  completed: { status: 'completed' },
  cancelled: { status: 'cancelled' },
  timedOut: (timeoutMs: number): RunEnding => ({
    status: 'timed_out',
    error: { code: 'timeout', message: `The run did not finish within its timeout of ${timeoutMs} ms.` },
  }),
  agentError: (message: string): RunEnding => ({ status: 'failed', error: { code: 'agent_error', message } }),
  failure: (code: RunFailureCode, message: string): RunEnding => ({ status: 'failed', error: { code, message } }),
  eventLimit: (message: string): RunEnding => ({ status: 'failed', error: { code: 'event_limit', message } }),
  eventBacklog: (detail: string): RunEnding => ({
    status: 'failed',
    error: { code: 'event_backlog', message: `The run's events could not be written fast enough within its memory bound: ${detail}.` },
  }),
  queueTimeout: (waitedMs: number): RunEnding => ({
    status: 'failed',
    error: { code: 'capacity_exhausted', message: `No run slot came free within ${waitedMs} ms (RUN_QUEUE_TIMEOUT_MS).` },
  }),
  internal: (message: string): RunEnding => ({ status: 'failed', error: { code: 'internal', message } }),
  shutdown: {
    status: 'interrupted',
    error: { code: 'shutdown', message: 'The instance shut down before the run finished.' },
  },
  /** Its instance died (it stopped beating) or restarted before the run finished. */
  instanceLost: {
    status: 'interrupted',
    error: { code: 'instance_lost', message: 'The instance running this run stopped before it finished.' },
  },
} as const satisfies Record<string, RunEnding | ((...args: never[]) => RunEnding)>;

/** The ending an aborted signal stands for; a foreign reason counts as cancel. */
export function endingOf(signal: AbortSignal): RunEnding {
  return signal.reason instanceof RunAbort ? signal.reason.ending : ENDINGS.cancelled;
}
