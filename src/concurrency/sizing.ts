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

function isLimit(bytes: number | null | undefined): bytes is number {
  return bytes != null && Number.isFinite(bytes) && bytes > 0 && bytes < UNLIMITED_BYTES;
}

/** Host figures lowered to the cgroup's and process.constrainedMemory()'s limits where those are lower (a 0 or undefined constrained memory means none). cpus is the quota rounded up to a whole core, at least 1. */
export function effectiveResources(host: Resources, cgroup: CgroupLimits | null, constrainedMemoryBytes: number | null): Resources {
  let cpus = host.cpus;
  if (cgroup?.cpuLimit != null && cgroup.cpuLimit > 0) cpus = Math.min(cpus, Math.ceil(cgroup.cpuLimit));

  let memoryBytes = host.memoryBytes;
  for (const limit of [cgroup?.memoryLimitBytes, constrainedMemoryBytes]) {
    if (isLimit(limit)) memoryBytes = Math.min(memoryBytes, limit);
  }
  return { cpus: Math.max(1, Math.ceil(cpus)), memoryBytes };
}

/**
 * Run slots of one process = min(floor(min(cpus × 10, floor(memory ÷ memoryPerRunMb MiB)) ÷ processes), 2000),
 * at least 1: `processes` (WORKERS, default 1) share the machine, and 2000 bounds one event loop.
 * `override` (from MAX_CONCURRENT_AGENT_RUNS, per process) wins with source 'env'.
 */
export function sizeRunSlots(resources: Resources, memoryPerRunMb: number, override?: number, processes = 1): Limit {
  const fromEnv = fromOverride('MAX_CONCURRENT_AGENT_RUNS', override);
  if (fromEnv) return fromEnv;
  if (!(memoryPerRunMb > 0)) throw new Error(`memoryPerRunMb must be positive, got ${memoryPerRunMb}`);
  const share = requirePositiveInteger('WORKERS', processes);
  const byCpu = resources.cpus * RUN_SLOTS_PER_CPU;
  const byMemory = Math.floor(resources.memoryBytes / (memoryPerRunMb * MIB));
  return { value: Math.max(1, Math.min(Math.floor(Math.min(byCpu, byMemory) / share), MAX_RUN_SLOTS)), source: 'auto' };
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
  readonly serverMaxClients: number | null; // CONFIG GET maxclients when known
  readonly instances: number;
  readonly commandsQueueMaxOverride?: number; // REDIS_COMMANDS_QUEUE_MAX
}
export interface RedisLimits {
  readonly connections: Limit; // fixed 2 per instance (commands, pub/sub subscriber) — source 'auto'
  readonly commandsQueueMax: Limit; // max(10000, runSlots * 50) unless overridden; bounds the commands node-redis holds
}

/** Throws Error naming the problem if instances × connections would exceed serverMaxClients. */
export function sizeRedis(input: RedisInput): RedisLimits {
  const instances = requirePositiveInteger('instances', input.instances);
  const needed = instances * REDIS_CONNECTIONS_PER_INSTANCE;
  if (input.serverMaxClients !== null && needed > input.serverMaxClients) {
    throw new Error(
      `Redis maxclients is ${input.serverMaxClients} but ${instances} agentd instances need ` +
        `${needed} connections (${REDIS_CONNECTIONS_PER_INSTANCE} each); raise maxclients or lower the instance count`,
    );
  }
  return {
    connections: { value: REDIS_CONNECTIONS_PER_INSTANCE, source: 'auto' },
    commandsQueueMax: fromOverride('REDIS_COMMANDS_QUEUE_MAX', input.commandsQueueMaxOverride) ?? {
      value: Math.max(REDIS_QUEUE_MIN, input.runSlots * REDIS_QUEUE_PER_RUN_SLOT),
      source: 'auto',
    },
  };
}
