import type { FinalStatus } from '../domain/index.js';

/** The CLI's exit codes: scripts tell a run's ending from a failure to reach agentd. */
export const EXIT = {
  ok: 0,
  /** agentd answered with an error, or could not be reached. */
  error: 1,
  /** Bad command line or configuration. */
  usage: 2,
  failed: 3,
  cancelled: 4,
  timedOut: 5,
  interrupted: 6,
  /** Stopped with Ctrl-C. */
  sigint: 130,
} as const;

/** The exit code of a command that followed a run to its end: 0 only when it completed. */
export function exitCodeOf(status: FinalStatus): number {
  switch (status) {
    case 'completed':
      return EXIT.ok;
    case 'failed':
      return EXIT.failed;
    case 'cancelled':
      return EXIT.cancelled;
    case 'timed_out':
      return EXIT.timedOut;
    case 'interrupted':
      return EXIT.interrupted;
    default: {
      const unreachable: never = status;
      throw new Error(`unknown status ${String(unreachable)}`);
    }
  }
}

/** A mistake on the command line, shown without a stack; exits with EXIT.usage. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
