import { hostname } from 'node:os';
import { z } from 'zod';
import { ConfigError } from '../domain/index.js';
import { type LlmProviderConfig, parseLlmProviders, parseModelPatterns, parseRoutingRules, type RoutingRule } from './llm-providers.js';
import { parseTierLimits, type TierLimits } from './tier-limits.js';

const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;

const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, `must be a whole number between ${min} and ${max}`)
    .transform(Number)
    .pipe(z.number().int().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`));

const url = (protocols: readonly string[]) =>
  z
    .string()
    .trim()
    .refine((value) => {
      try {
        return protocols.includes(new URL(value).protocol);
      } catch {
        return false; // reported by the refinement's message below
      }
    }, `must be a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}`);

const secret = z.string().min(16, 'must be at least 16 characters long');

/** Most worker processes WORKERS may ask for. */
const MAX_WORKERS = 256;

const workers = z
  .string()
  .trim()
  .toLowerCase()
  .refine(
    (value) => value === 'auto' || (/^\d+$/.test(value) && Number(value) >= 1 && Number(value) <= MAX_WORKERS),
    `must be auto or a whole number between 1 and ${MAX_WORKERS}`,
  )
  .transform((value): number | 'auto' => (value === 'auto' ? 'auto' : Number(value)));

/**
 * Set by the cluster primary on each worker it forks, `<slot>/<count>` (slot 1..count); not
 * user configuration, so not in the schema or `.env.example`.
 */
export const WORKER_ENV = 'AGENTD_WORKER';

/** This process's place in a cluster started by WORKERS > 1. */
export interface WorkerSlot {
  /** 1..count, stable across restarts of the worker in that slot. */
  readonly slot: number;
  /** How many workers the primary runs (WORKERS, resolved when `auto`). */
  readonly count: number;
}

/**
 * Every environment variable agentd reads, with its parser. Optional ones without a default
 * are auto-sized or simply absent; `.env.example` lists the same names with their defaults.
 */
const schema = {
  PORT: int(0, 65535).default(3000),
  HOST: z.string().trim().min(1).default('0.0.0.0'),
  INSTANCE_ID: z.string().trim().regex(/^[A-Za-z0-9._:-]{1,64}$/, 'must be 1-64 letters, digits or ._:-').optional(),
  DATABASE_URL: url(['postgres:', 'postgresql:']).optional(),
  DATA_DIR: z.string().trim().min(1).default('./data'),
  REDIS_URL: url(['redis:', 'rediss:']).optional(),
  ADMIN_TOKEN: secret.optional(),
  METRICS_TOKEN: secret.optional(),
  LOG_LEVEL: z.enum(LOG_LEVELS).default('info'),
  TIER_LIMITS: z.string().default('free:1,pro:5,enterprise:25'),
  MAX_CONCURRENT_AGENT_RUNS: int(1, 100_000).optional(),
  MEMORY_PER_RUN_MB: int(1, 1_000_000).default(200),
  RUN_QUEUE_MAX: int(0, 1_000_000).optional(),
  RUN_QUEUE_TIMEOUT_MS: int(1, 86_400_000).default(30_000),
  RUN_TIMEOUT_MS: int(1, 86_400_000).default(900_000),
  MAX_RUN_TIMEOUT_MS: int(1, 86_400_000).default(3_600_000),
  SESSION_MAX_INFLIGHT: int(1, 100_000).default(1),
  MAX_BODY_BYTES: int(1024, 100 * 1024 * 1024).default(1_048_576),
  MAX_EVENTS_PER_RUN: int(1, 10_000_000).default(100_000),
  MAX_EVENT_BYTES: int(64, 16 * 1024 * 1024).default(262_144),
  STREAM_TTL_SECONDS: int(1, 30 * 86_400).default(600),
  STREAM_MAXLEN: int(100, 10_000_000).default(10_000),
  REDIS_KEY_PREFIX: z.string().regex(/^[A-Za-z0-9:._-]{0,64}$/, 'must be up to 64 letters, digits or :._-').default('agentd:'),
  REDIS_COMMANDS_QUEUE_MAX: int(100, 10_000_000).optional(),
  ARCHIVE_FLUSH_MS: int(10, 60_000).default(1_000),
  SSE_HEARTBEAT_MS: int(100, 600_000).default(15_000),
  SSE_MAX_BUFFER_BYTES: int(1024, 1024 * 1024 * 1024).default(1_048_576),
  DB_MAX_CONNECTIONS: int(1, 10_000).optional(),
  DB_INSTANCES: int(1, 1000).default(4),
  DB_ACQUIRE_TIMEOUT_MS: int(1, 600_000).default(5_000),
  DB_PREPARED_STATEMENTS: z
    .enum(['true', 'false'], { message: 'must be true or false' })
    .default('true')
    .transform((value) => value === 'true'),
  SHUTDOWN_GRACE_MS: int(0, 3_600_000).default(30_000),
  WORKERS: workers.default(1),
  LLM_PROVIDERS: z.string().optional(),
  GLOBAL_MAX_INFLIGHT: int(1, 100_000).optional(),
  LLM_TIMEOUT_MS: int(1, 86_400_000).default(240_000),
  LLM_WEB_SEARCH_TIMEOUT_MS: int(1, 86_400_000).default(300_000),
  LLM_THINKING_TIMEOUT_MS: int(1, 86_400_000).default(360_000),
  LLM_WEB_THINKING_TIMEOUT_MS: int(1, 86_400_000).default(420_000),
  LLM_IDLE_TIMEOUT_MS: int(1, 86_400_000).default(60_000),
  LLM_THINKING_MODELS: z.string().default('*thinking*,o1*,o3*'),
  LLM_MAX_RETRIES: int(0, 20).default(3),
  LLM_ROUTING_RULES: z.string().optional(),
  ROUTING_CACHE_TTL_MS: int(0, 86_400_000).default(180_000),
} as const;

export type EnvName = keyof typeof schema;
type Parsed = { [K in EnvName]: z.output<(typeof schema)[K]> };

export interface Config {
  readonly port: number;
  readonly host: string;
  readonly instanceId: string;
  /** Unset: the embedded PGlite database under `dataDir`. */
  readonly databaseUrl: string | null;
  readonly dataDir: string;
  /** Unset: the in-process event store (single instance only). */
  readonly redisUrl: string | null;
  /** Unset: admin routes answer 404. */
  readonly adminToken: string | null;
  readonly metricsToken: string | null;
  readonly logLevel: (typeof LOG_LEVELS)[number];
  readonly tierLimits: TierLimits;
  readonly maxConcurrentAgentRuns: number | null;
  readonly memoryPerRunMb: number;
  readonly runQueueMax: number | null;
  readonly runQueueTimeoutMs: number;
  readonly runTimeoutMs: number;
  readonly maxRunTimeoutMs: number;
  readonly sessionMaxInflight: number;
  readonly maxBodyBytes: number;
  readonly maxEventsPerRun: number;
  readonly maxEventBytes: number;
  readonly streamTtlSeconds: number;
  readonly streamMaxLen: number;
  readonly redisKeyPrefix: string;
  readonly redisCommandsQueueMax: number | null;
  readonly archiveFlushMs: number;
  readonly sseHeartbeatMs: number;
  readonly sseMaxBufferBytes: number;
  readonly dbMaxConnections: number | null;
  readonly dbInstances: number;
  readonly dbAcquireTimeoutMs: number;
  /** Prepare parameterised statements once per connection (one round trip per statement, not two). */
  readonly dbPreparedStatements: boolean;
  readonly shutdownGraceMs: number;
  /** Processes to run on this port; 1: this process serves (no cluster); `auto`: the container-aware CPU count. */
  readonly workers: number | 'auto';
  /** Set in a worker forked by the cluster primary; null in a primary or a lone process. */
  readonly worker: WorkerSlot | null;
  /** OpenAI-compatible providers; empty: no `chat` agent. */
  readonly llmProviders: readonly LlmProviderConfig[];
  /** Unset: = run slots (sized at start-up). */
  readonly globalMaxInflight: number | null;
  readonly llmTimeoutMs: number;
  readonly llmWebSearchTimeoutMs: number;
  readonly llmThinkingTimeoutMs: number;
  readonly llmWebThinkingTimeoutMs: number;
  readonly llmIdleTimeoutMs: number;
  readonly llmThinkingModels: readonly string[];
  readonly llmMaxRetries: number;
  /** Unset: every `auto` request goes to the first provider's first model. */
  readonly llmRoutingRules: readonly RoutingRule[] | null;
  readonly routingCacheTtlMs: number;
  /** Which variables were set in the environment (`env`) and which took their default. */
  readonly sources: Readonly<Record<EnvName, 'env' | 'default'>>;
}

/**
 * Reads the environment once into a frozen Config. Throws ConfigError naming every bad
 * variable and the value it got. Empty strings count as unset.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  const parsed: Partial<Record<EnvName, unknown>> = {};
  const sources = {} as Record<EnvName, 'env' | 'default'>;
  for (const name of Object.keys(schema) as EnvName[]) {
    const raw = env[name];
    const present = raw !== undefined && raw.trim() !== '';
    sources[name] = present ? 'env' : 'default';
    const result = schema[name].safeParse(present ? raw : undefined);
    if (result.success) parsed[name] = result.data;
    else problems.push(`${name} ${result.error.issues[0]?.message ?? 'is invalid'} (got ${JSON.stringify(raw)})`);
  }
  const p = parsed as Parsed;
  let tierLimits: TierLimits | undefined;
  if (p.TIER_LIMITS !== undefined) {
    try {
      tierLimits = parseTierLimits(p.TIER_LIMITS);
    } catch (error) {
      problems.push(`TIER_LIMITS ${(error as Error).message} (got ${JSON.stringify(env.TIER_LIMITS)})`);
    }
  }
  const llm = parseLlm(p, env, problems);
  const worker = parseWorkerSlot(env[WORKER_ENV], problems);
  if (p.WORKERS !== undefined && p.WORKERS !== 1 && (sources.DATABASE_URL === 'default' || sources.REDIS_URL === 'default')) {
    problems.push(
      `WORKERS needs DATABASE_URL and REDIS_URL, which its worker processes share runs, events and cancels through ` +
        `(got ${JSON.stringify(env.WORKERS)})`,
    );
  }
  if (problems.length === 0 && p.RUN_TIMEOUT_MS > p.MAX_RUN_TIMEOUT_MS) {
    problems.push(`RUN_TIMEOUT_MS must not exceed MAX_RUN_TIMEOUT_MS (got ${p.RUN_TIMEOUT_MS} > ${p.MAX_RUN_TIMEOUT_MS})`);
  }
  if (problems.length > 0 || tierLimits === undefined || llm === undefined) {
    throw new ConfigError(`Invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  return Object.freeze({
    port: p.PORT,
    host: p.HOST,
    // Each worker slot has its own id, the same after a restart, so it ends its own leftover runs.
    instanceId: `${p.INSTANCE_ID ?? `${hostname()}:${p.PORT}`}${worker === null ? '' : `/${worker.slot}`}`,
    databaseUrl: p.DATABASE_URL ?? null,
    dataDir: p.DATA_DIR,
    redisUrl: p.REDIS_URL ?? null,
    adminToken: p.ADMIN_TOKEN ?? null,
    metricsToken: p.METRICS_TOKEN ?? null,
    logLevel: p.LOG_LEVEL,
    tierLimits,
    maxConcurrentAgentRuns: p.MAX_CONCURRENT_AGENT_RUNS ?? null,
    memoryPerRunMb: p.MEMORY_PER_RUN_MB,
    runQueueMax: p.RUN_QUEUE_MAX ?? null,
    runQueueTimeoutMs: p.RUN_QUEUE_TIMEOUT_MS,
    runTimeoutMs: p.RUN_TIMEOUT_MS,
    maxRunTimeoutMs: p.MAX_RUN_TIMEOUT_MS,
    sessionMaxInflight: p.SESSION_MAX_INFLIGHT,
    maxBodyBytes: p.MAX_BODY_BYTES,
    maxEventsPerRun: p.MAX_EVENTS_PER_RUN,
    maxEventBytes: p.MAX_EVENT_BYTES,
    streamTtlSeconds: p.STREAM_TTL_SECONDS,
    streamMaxLen: p.STREAM_MAXLEN,
    redisKeyPrefix: p.REDIS_KEY_PREFIX,
    redisCommandsQueueMax: p.REDIS_COMMANDS_QUEUE_MAX ?? null,
    archiveFlushMs: p.ARCHIVE_FLUSH_MS,
    sseHeartbeatMs: p.SSE_HEARTBEAT_MS,
    sseMaxBufferBytes: p.SSE_MAX_BUFFER_BYTES,
    dbMaxConnections: p.DB_MAX_CONNECTIONS ?? null,
    dbInstances: p.DB_INSTANCES,
    dbAcquireTimeoutMs: p.DB_ACQUIRE_TIMEOUT_MS,
    dbPreparedStatements: p.DB_PREPARED_STATEMENTS,
    shutdownGraceMs: p.SHUTDOWN_GRACE_MS,
    workers: p.WORKERS,
    worker,
    llmProviders: llm.providers,
    globalMaxInflight: p.GLOBAL_MAX_INFLIGHT ?? null,
    llmTimeoutMs: p.LLM_TIMEOUT_MS,
    llmWebSearchTimeoutMs: p.LLM_WEB_SEARCH_TIMEOUT_MS,
    llmThinkingTimeoutMs: p.LLM_THINKING_TIMEOUT_MS,
    llmWebThinkingTimeoutMs: p.LLM_WEB_THINKING_TIMEOUT_MS,
    llmIdleTimeoutMs: p.LLM_IDLE_TIMEOUT_MS,
    llmThinkingModels: llm.thinkingModels,
    llmMaxRetries: p.LLM_MAX_RETRIES,
    llmRoutingRules: llm.routingRules,
    routingCacheTtlMs: p.ROUTING_CACHE_TTL_MS,
    sources: Object.freeze(sources),
  });
}

/** AGENTD_WORKER (`<slot>/<count>`), or null when unset; a malformed one is pushed to problems. */
function parseWorkerSlot(raw: string | undefined, problems: string[]): WorkerSlot | null {
  if (raw === undefined || raw.trim() === '') return null;
  const match = /^(\d+)\/(\d+)$/.exec(raw.trim());
  const slot = Number(match?.[1]);
  const count = Number(match?.[2]);
  if (match === null || slot < 1 || slot > count || count > MAX_WORKERS) {
    problems.push(`${WORKER_ENV} must be <slot>/<count> with 1 <= slot <= count <= ${MAX_WORKERS}; only the cluster primary sets it (got ${JSON.stringify(raw)})`);
    return null;
  }
  return Object.freeze({ slot, count });
}

/** The structured LLM variables; problems are pushed naming the variable, undefined when any failed. */
function parseLlm(
  p: Parsed,
  env: NodeJS.ProcessEnv,
  problems: string[],
): { providers: readonly LlmProviderConfig[]; routingRules: readonly RoutingRule[] | null; thinkingModels: readonly string[] } | undefined {
  const attempt = <T>(name: EnvName, parse: () => T): T | undefined => {
    try {
      return parse();
    } catch (error) {
      problems.push(`${name} ${(error as Error).message} (got ${JSON.stringify(env[name])})`);
      return undefined;
    }
  };
  const providersText = p.LLM_PROVIDERS;
  const providers = providersText === undefined ? [] : attempt('LLM_PROVIDERS', () => parseLlmProviders(providersText, env));
  const thinkingModels = attempt('LLM_THINKING_MODELS', () => parseModelPatterns(p.LLM_THINKING_MODELS));
  if (providers === undefined || thinkingModels === undefined) return undefined;
  let routingRules: readonly RoutingRule[] | null = null;
  const rulesText = p.LLM_ROUTING_RULES;
  if (rulesText !== undefined) {
    const parsed = attempt('LLM_ROUTING_RULES', () => {
      if (providers.length === 0) throw new Error('needs LLM_PROVIDERS');
      return parseRoutingRules(rulesText, providers);
    });
    if (parsed === undefined) return undefined;
    routingRules = parsed;
  }
  return { providers, routingRules, thinkingModels };
}
