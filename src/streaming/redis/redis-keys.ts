/**
 * Every Redis key and channel name agentd uses, under one prefix (REDIS_KEY_PREFIX), so
 * tests and tenants can share a server without seeing each other.
 */
export class RedisKeys {
  constructor(readonly prefix: string) {}

  /** The stream of one run's events. */
  runStream(runId: string): string {
    return `${this.prefix}run:${runId}:events`;
  }

  /** Set when a cancel was requested, so a cancel that races the run's start is not lost. */
  cancelRequested(runId: string): string {
    return `${this.prefix}run:${runId}:cancel`;
  }

  /** Pub/sub: one message per writing instance per flush, naming the runs that got events. */
  get eventsChannel(): string {
    return `${this.prefix}events`;
  }

  /** Pub/sub: run ids to cancel, for whichever instance runs them. */
  get cancelChannel(): string {
    return `${this.prefix}cancel`;
  }
}
