/**
 * Every Redis key and channel name agentd uses, under one prefix (REDIS_KEY_PREFIX), so
 * tests and tenants can share a server without seeing each other. A run's keys carry its id as
 * a hash tag (`{id}`): on a Redis Cluster they share one slot, so the scripts that touch them
 * run on one shard. Channels are not keys (classic pub/sub reaches every node of a cluster).
 */
export class RedisKeys {
  constructor(readonly prefix: string) {}

  /** The stream of one run's events. */
  runStream(runId: string): string {
    return `${this.prefix}run:{${runId}}:events`;
  }

  /** Set when a cancel was requested, so a cancel that races the run's start is not lost. */
  cancelRequested(runId: string): string {
    return `${this.prefix}run:{${runId}}:cancel`;
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
