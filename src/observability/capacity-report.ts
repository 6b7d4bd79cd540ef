import type { DetectedMachine } from '../concurrency/detect.js';
import type { FairSemaphore } from '../concurrency/fair-semaphore.js';
import type { Limit, RunSlotsBound } from '../concurrency/sizing.js';
import type { Database } from '../db/database.js';
import type { InstanceRepository } from '../db/instance-repository.js';
import type { RunRepository } from '../db/run-repository.js';
import type { LlmLimiters } from '../llm/llm-limiters.js';
import type { TierLimits } from '../config/tier-limits.js';
import type { EventStore } from '../streaming/event-store.js';
import type { Followers } from '../streaming/followers.js';
import type { LingeringAgents } from '../runtime/lingering-agents.js';
import type { EventArchiver } from '../streaming/event-archiver.js';
import type { EventLog } from '../streaming/event-log.js';

/** Every sized or configured limit of this instance, by the env var that sets it. */
export type LimitTable = Readonly<Record<string, Limit>>;

/** An account's or session's limit as a limiter: leases held across all instances. */
interface TenancyLimiter {
  limit: number;
  in_use: number;
  queued: number;
  holders: string[];
}

/** How the run slots were sized: their number, what bounded it, and the processes sharing the machine (WORKERS). */
export interface RunSlotsSizing {
  readonly runSlots: number;
  readonly boundBy: RunSlotsBound;
  readonly processes: number;
}

/** Most accounts the capacity view lists with their leases. */
const TENANCY_ACCOUNTS_MAX = 100;

/** Builds `GET /v1/admin/capacity`: this instance's sizing and live use of every limiter. */
export class CapacityReport {
  constructor(
    private readonly deps: {
      readonly instanceId: string;
      readonly machine: DetectedMachine;
      readonly sizing: RunSlotsSizing;
      readonly limits: LimitTable;
      readonly slots: FairSemaphore;
      readonly db: Database;
      readonly runs: RunRepository;
      readonly instances: Pick<InstanceRepository, 'list'>;
      readonly store: EventStore;
      readonly listeners: Followers;
      readonly lingering: LingeringAgents;
      readonly archiver: Pick<EventArchiver, 'pendingCount' | 'pendingBytes'>;
      readonly eventLog: Pick<EventLog, 'archiveReadStats'>;
      readonly llm: LlmLimiters;
      readonly tierLimits: TierLimits;
      readonly sessionMaxInflight: number;
    },
  ) {}

  /**
   * The account and session limits as limiters: for each account (and session) holding leases
   * on any instance (the 100 holding most), its limit, the leases held across all instances
   * (`in_use`, `holders`) and how many of them wait for a slot here (`queued`).
   */
  private async tenancy(): Promise<{ accounts: Record<string, unknown>; sessions: Record<string, unknown> }> {
    const holders = await this.deps.runs.leaseHolders(TENANCY_ACCOUNTS_MAX);
    const waiting = new Set(this.deps.slots.waiters());
    const accounts: Record<string, TenancyLimiter & { name: string; tier: string }> = {};
    const sessions: Record<string, TenancyLimiter> = {};
    const hold = (limiter: TenancyLimiter, runId: string) => {
      limiter.in_use += 1;
      limiter.holders.push(runId);
      if (waiting.has(runId)) limiter.queued += 1;
    };
    for (const lease of holders) {
      const limit = this.deps.tierLimits.get(lease.tier) ?? 0;
      const account = (accounts[lease.accountId] ??= {
        name: lease.accountName,
        tier: lease.tier,
        limit,
        in_use: 0,
        queued: 0,
        holders: [],
      });
      hold(account, lease.runId);
      if (lease.sessionId === null) continue;
      const key = `${lease.accountId}/${lease.sessionId}`;
      hold((sessions[key] ??= { limit: this.deps.sessionMaxInflight, in_use: 0, queued: 0, holders: [] }), lease.runId);
    }
    return { accounts, sessions };
  }

  /** The figures sized for, each with the limit that won, and what bounded the run slots. */
  private sizing(): Record<string, unknown> {
    const { machine, sizing } = this.deps;
    return {
      cpus: { value: machine.figures.cpus.value, source: machine.figures.cpus.source },
      memory_bytes: { value: machine.figures.memoryBytes.value, source: machine.figures.memoryBytes.source },
      run_slots: { value: sizing.runSlots, bound_by: sizing.boundBy, workers: sizing.processes },
    };
  }

  /** The cgroup limits read, when there is a cgroup mount. */
  private cgroup(): Record<string, unknown> {
    const { cgroup } = this.deps.machine;
    if (cgroup === null) return {};
    return {
      cgroup: {
        version: cgroup.version,
        cpu_limit: cgroup.cpuQuota?.value ?? null,
        cpuset_cpus: cgroup.cpusetCpus?.value ?? null,
        memory_limit_bytes: cgroup.memoryBytes?.value ?? null,
      },
    };
  }

  async snapshot(): Promise<Record<string, unknown>> {
    const { machine, slots, db } = this.deps;
    const pool = db.stats();
    const stream = this.deps.store.stats();
    const [leases, tenancy, instances] = await Promise.all([
      this.deps.runs.countLeases(this.deps.instanceId),
      this.tenancy(),
      this.deps.instances.list(),
    ]);
    return {
      instance_id: this.deps.instanceId,
      detected: {
        cpus: machine.effective.cpus,
        memory_bytes: machine.effective.memoryBytes,
        host: { cpus: machine.host.cpus, memory_bytes: machine.host.memoryBytes },
        ...this.cgroup(),
        ...(machine.constrainedMemoryBytes === null ? {} : { constrained_memory_bytes: machine.constrainedMemoryBytes }),
      },
      // Which limit won for CPUs, memory and run slots, and why.
      sizing: this.sizing(),
      limits: this.deps.limits,
      runs: {
        capacity: slots.capacity,
        in_use: slots.inUse,
        queued: slots.queued,
        queue_max: slots.queueMax,
        holders: slots.holders(),
        waiting: slots.waiters(),
        // Agents still running after their run ended (they ignored its AbortSignal).
        lingering_agents: this.deps.lingering.count,
      },
      db_pool: { kind: db.kind, max: pool.max, in_use: pool.inUse, idle: pool.idle, waiting: pool.waiting },
      redis: { connections: stream.connections, in_flight_ops: stream.inFlightOps, pending_events: stream.pendingEvents },
      // Events accepted and not yet in the Postgres archive (written every ARCHIVE_FLUSH_MS, at each
      // run's end, and at once for a run past RUN_EVENT_BACKLOG_BYTES); catch-up pages read from the
      // archive now (`in_use`) and waiting for their turn (`queued`).
      archive: {
        pending_events: this.deps.archiver.pendingCount,
        pending_bytes: this.deps.archiver.pendingBytes,
        reads: { in_use: this.deps.eventLog.archiveReadStats.active, queued: this.deps.eventLog.archiveReadStats.queued },
      },
      sse: { listeners: this.deps.listeners.count, accounts: this.deps.listeners.accounts },
      llm: this.deps.llm.snapshot(),
      // Leases held by runs of this instance in the database (the tier and session limits count these).
      // `active`/`leases`: accounts and leases of runs on this instance; `limits`: each such
      // account's (and session's) limiter across all instances.
      accounts: { active: leases.accounts, leases: leases.runs, limits: tenancy.accounts },
      sessions: { active: leases.sessions, limits: tenancy.sessions },
      // Every instance alive or holding leases, by heartbeat (dead: silent for 3 beats); a dead
      // one's runs are swept by the live ones, so its leases show here only until then.
      instances: instances.map((i) => ({
        id: i.id,
        alive: i.alive,
        started_at: i.startedAt?.toISOString() ?? null,
        last_beat_at: i.lastBeatAt?.toISOString() ?? null,
        leases: i.leases,
      })),
      leases: { total: instances.reduce((sum, i) => sum + i.leases, 0) },
    };
  }
}
