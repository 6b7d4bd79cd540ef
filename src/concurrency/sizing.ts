import { type CgroupLimits, UNLIMITED_BYTES } from './cgroup.js';

export type LimitSource = 'auto' | 'env' | 'default';
export interface Limit {
  readonly value: number;
  readonly source: LimitSource;
}
export interface Resources {
  readonly cpus: number;
  readonly memoryBytes: number;
}

const MIB = 1024 * 1024;
const RUN_SLOTS_PER_CPU = 10;
const MAX_RUN_SLOTS = 2000;
const DB_POOL_MIN = 4;
const DB_POOL_MAX = 32;
/** Fraction of the server's non-reserved connections the agentd instances may take together. */
const DB_SERVER_SHARE = 0.9;
/** The commands client and the pub/sub subscriber. */
const REDIS_CONNECTIONS_PER_INSTANCE = 2;
const REDIS_QUEUE_MIN = 10_000;
const REDIS_QUEUE_PER_RUN_SLOT = 50;

function requirePositiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new Error(`${name} must be a positive integer, got ${value}`);
  }
  return value;
}

function fromOverride(name: string, value: number | undefined): Limit | null {
  return value === undefined ? null : { value: requirePositiveInteger(name, value), source: 'env' };
}

/** A figure sized for, with what set it (`os.availableParallelism()`, `cgroup cpu.max <file> (1.5 cores)`, …). */
export interface Sourced {
  readonly value: number;
  readonly source: string;
}

/** The machine as sized for: each figure with the limit that won. */
export interface MachineFigures {
  readonly cpus: Sourced;
  readonly memoryBytes: Sourced;
}

/** What the figures are lowered from: the host's, the cgroup's limits and process.constrainedMemory(). */
export interface MachineReadings {
  /** os.availableParallelism() (the CPU affinity mask, so a cpuset too) and os.totalmem(). */
  readonly host: Resources;
  readonly cgroup: CgroupLimits | null;
  /** process.constrainedMemory(); null, 0 or 2^60 and above: none. */
  readonly constrainedMemoryBytes: number | null;
}

function isLimit(bytes: number | null | undefined): bytes is number {
  return bytes != null && Number.isFinite(bytes) && bytes > 0 && bytes < UNLIMITED_BYTES;
}

/** The smallest candidate; on a tie the earlier one, so the more specific source is named. */
function lowest(first: Sourced, ...others: (Sourced | null)[]): Sourced {
  return others.reduce<Sourced>((best, next) => (next !== null && next.value < best.value ? next : best), first);
}

/**
 * The host figures lowered to every limit below them, naming the one that won: CPUs to the
 * cgroup's quota (rounded up to a whole core) and cpuset, memory to the cgroup's limit and
 * process.constrainedMemory(). At least 1 CPU.
 */
export function effectiveResources(readings: MachineReadings): MachineFigures {
  const { host, cgroup, constrainedMemoryBytes } = readings;
  const quota = cgroup?.cpuQuota;
  const cpuset = cgroup?.cpusetCpus;
  const memory = cgroup?.memoryBytes;
  const cpus = lowest(
    { value: Math.max(1, host.cpus), source: 'os.availableParallelism()' },
    quota == null || !(quota.value > 0)
      ? null
      : {
          value: Math.max(1, Math.ceil(quota.value)),
          source: `cgroup ${cpuLimitName(cgroup)} ${quota.file} (${quota.value} ${quota.value === 1 ? 'core' : 'cores'})`,
        },
    cpuset == null ? null : { value: Math.max(1, cpuset.value), source: `cgroup cpuset ${cpuset.file}` },
  );
  const memoryBytes = lowest(
    { value: host.memoryBytes, source: 'os.totalmem()' },
    memory == null || !isLimit(memory.value) ? null : { value: memory.value, source: `cgroup ${memoryLimitName(cgroup)} ${memory.file}` },
    isLimit(constrainedMemoryBytes) ? { value: constrainedMemoryBytes, source: 'process.constrainedMemory()' } : null,
  );
  return { cpus, memoryBytes };
}

function cpuLimitName(cgroup: CgroupLimits | null): string {
  return cgroup?.version === 1 ? 'cpu.cfs_quota_us' : 'cpu.max';
}

function memoryLimitName(cgroup: CgroupLimits | null): string {
  return cgroup?.version === 1 ? 'memory.limit_in_bytes' : 'memory.max';
}

/** What bounded the run slots: the CPU or the memory figure, the 2000 cap, or MAX_CONCURRENT_AGENT_RUNS. */
export type RunSlotsBound = 'cpus' | 'memory' | 'cap' | 'env';

/**
 * Run slots of one process = min(floor(min(cpus × 10, floor(memory ÷ memoryPerRunMb MiB)) ÷ processes), 2000),
 * at least 1: `processes` (WORKERS, default 1) share the machine, and 2000 bounds one event loop.
 * `override` (from MAX_CONCURRENT_AGENT_RUNS, per process) wins with source 'env'. `boundBy` says which term won.
 */
export function sizeRunSlots(
  resources: Resources,
  memoryPerRunMb: number,
  override?: number,
  processes = 1,
): Limit & { readonly boundBy: RunSlotsBound } {
  const fromEnv = fromOverride('MAX_CONCURRENT_AGENT_RUNS', override);
  if (fromEnv) return { ...fromEnv, boundBy: 'env' };
  if (!(memoryPerRunMb > 0)) throw new Error(`memoryPerRunMb must be positive, got ${memoryPerRunMb}`);
  const share = requirePositiveInteger('WORKERS', processes);
  const byCpu = resources.cpus * RUN_SLOTS_PER_CPU;
  const byMemory = Math.floor(resources.memoryBytes / (memoryPerRunMb * MIB));
  const perProcess = Math.floor(Math.min(byCpu, byMemory) / share);
  const boundBy: RunSlotsBound = perProcess > MAX_RUN_SLOTS ? 'cap' : byMemory < byCpu ? 'memory' : 'cpus';
  return { value: Math.max(1, Math.min(perProcess, MAX_RUN_SLOTS)), source: 'auto', boundBy };
}

export interface DbPoolInput {
  readonly runSlots: number;
  readonly serverMaxConnections: number; // SHOW max_connections
  readonly reservedConnections: number; // SHOW superuser_reserved_connections (+ reserved_connections if any)
  readonly instances: number; // how many agentd instances share the server (DB_INSTANCES, default 4)
  readonly processes?: number; // worker processes per instance (WORKERS, default 1); each counts as an instance
  readonly override?: number; // DB_MAX_CONNECTIONS (per process)
}

/** Pool size of one process derived from its run slots (clamp(ceil(runSlots / 2), 4, 32)) but never above its share of the server: floor((max - reserved) * 0.9 / (instances * processes)), at least 1. */
export function sizeDbPool(input: DbPoolInput): Limit {
  const fromEnv = fromOverride('DB_MAX_CONNECTIONS', input.override);
  if (fromEnv) return fromEnv;
  const instances = requirePositiveInteger('DB_INSTANCES', input.instances) * requirePositiveInteger('WORKERS', input.processes ?? 1);
  const wanted = Math.min(Math.max(Math.ceil(input.runSlots / 2), DB_POOL_MIN), DB_POOL_MAX);
  const available = Math.max(0, input.serverMaxConnections - input.reservedConnections);
  const share = Math.floor((available * DB_SERVER_SHARE) / instances);
  return { value: Math.max(1, Math.min(wanted, share)), source: 'auto' };
}

export interface RedisInput {
  readonly runSlots: number;
  readonly commandsQueueMaxOverride?: number; // REDIS_COMMANDS_QUEUE_MAX
}
export interface RedisLimits {
  readonly connections: Limit; // fixed 2 per process (commands, pub/sub subscriber); per shard at most on a cluster — source 'auto'
  readonly commandsQueueMax: Limit; // max(10000, runSlots * 50) unless overridden; bounds the commands node-redis holds
}

/**
 * The Redis limits of one process: its 2 connections and node-redis' command queue bound. On a
 * Redis Cluster the 2 are per shard at most: a command connection to each master, and one
 * subscriber on one of them.
 */
export function sizeRedis(input: RedisInput): RedisLimits {
  return {
    connections: { value: REDIS_CONNECTIONS_PER_INSTANCE, source: 'auto' },
    commandsQueueMax: fromOverride('REDIS_COMMANDS_QUEUE_MAX', input.commandsQueueMaxOverride) ?? {
      value: Math.max(REDIS_QUEUE_MIN, input.runSlots * REDIS_QUEUE_PER_RUN_SLOT),
      source: 'auto',
    },
  };
}

export interface RedisClientsInput {
  readonly serverMaxClients: number; // CONFIG GET maxclients
  readonly instances: number; // DB_INSTANCES: agentd instances sharing the server
  readonly processes: number; // WORKERS per instance; each process opens its own connections
  readonly cluster?: boolean; // serverMaxClients is the smallest of a Redis Cluster's shards
}

/**
 * Null when every process of every instance fits in the server's maxclients
 * (instances × processes × 2 connections), else the problem, naming the figures.
 */
export function redisClientsProblem(input: RedisClientsInput): string | null {
  const instances = requirePositiveInteger('DB_INSTANCES', input.instances);
  const processes = requirePositiveInteger('WORKERS', input.processes);
  const needed = instances * processes * REDIS_CONNECTIONS_PER_INSTANCE;
  if (needed <= input.serverMaxClients) return null;
  return (
    `Redis maxclients${input.cluster === true ? ' (the smallest of the cluster shards)' : ''} is ${input.serverMaxClients} but ${instances} agentd instances (DB_INSTANCES) of ${processes} ` +
    `processes each (WORKERS) need ${needed} connections${input.cluster === true ? ' on a shard' : ''} (${REDIS_CONNECTIONS_PER_INSTANCE} per process); ` +
    `raise maxclients or lower DB_INSTANCES or WORKERS`
  );
}
