import { z } from 'zod';
import { parseCorsOrigins } from './cors-origins.js';
import { parseRedisClusterNodes } from './redis-cluster-nodes.js';
import { parseLlmProviders, parseModelPatterns, parseRoutingRules } from './llm-providers.js';
import { parseTierLimits } from './tier-limits.js';
import { parseWebhookSecret } from '../lib/standard-webhooks.js';
import { bool, int, parsedText, secret, url, variable } from './variable.js';

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export const LOG_FORMATS = ['json', 'pretty'] as const;

/** Most worker processes WORKERS may ask for. */
export const MAX_WORKERS = 256;

const workers = z
  .string()
  .trim()
  .toLowerCase()
  .refine(
    (value) => value === 'auto' || (/^\d+$/.test(value) && Number(value) >= 1 && Number(value) <= MAX_WORKERS),
    `must be auto or a whole number between 1 and ${MAX_WORKERS}`,
  )
  .transform((value): number | 'auto' => (value === 'auto' ? 'auto' : Number(value)));

/** The `server` section. */
const server = {
  port: variable('PORT', int(0, 65535).default(3000)),
  host: variable('HOST', z.string().trim().min(1).default('0.0.0.0')),
  /** INSTANCE_ID as set; the id the instance uses is `Config.instanceId`. */
  configuredInstanceId: variable(
    'INSTANCE_ID',
    z
      .string()
      .trim()
      .regex(/^[A-Za-z0-9._:-]{1,64}$/, 'must be 1-64 letters, digits or ._:-')
      .optional(),
  ),
  adminToken: variable('ADMIN_TOKEN', secret.optional(), { secret: true }),
  metricsToken: variable('METRICS_TOKEN', secret.optional(), { secret: true }),
  logLevel: variable('LOG_LEVEL', z.enum(LOG_LEVELS).default('info')),
  /** `json`: one JSON object per line; `pretty`: lines for people (coloured on a TTY). */
  logFormat: variable('LOG_FORMAT', z.enum(LOG_FORMATS).default('json')),
  maxBodyBytes: variable('MAX_BODY_BYTES', int(1024, 100 * 1024 * 1024).default(1_048_576)),
  shutdownGraceMs: variable('SHUTDOWN_GRACE_MS', int(0, 3_600_000).default(30_000)),
  /** How often this instance renews its liveness; silent for 3 beats (database clock), it is dead and its runs are swept. */
  heartbeatMs: variable('INSTANCE_HEARTBEAT_MS', int(100, 600_000).default(5_000), { limit: true }),
  /**
   * Processes to run on this port; 1: this process serves (no cluster); `auto`: the
   * container-aware CPU count. WEB_CONCURRENCY (the name Heroku and others set) when WORKERS is unset.
   */
  workers: variable('WORKERS', workers.default(1), { limit: true, aliases: ['WEB_CONCURRENCY'] }),
  /** Origins whose pages may call /v1 (not /v1/admin) and /openapi.json from a browser; empty: no CORS headers at all. */
  corsOrigins: variable('CORS_ORIGINS', parsedText(parseCorsOrigins).prefault('')),
  /** Signs stream tokens, the same on every instance; unset: derived from ADMIN_TOKEN (neither: no stream tokens). */
  streamTokenSecret: variable('STREAM_TOKEN_SECRET', secret.optional(), { secret: true }),
  /** How long a stream token may open its run's event stream. */
  streamTokenTtlSeconds: variable('STREAM_TOKEN_TTL_SECONDS', int(1, 86_400).default(300)),
} as const;

/** The `runs` section. */
const runs = {
  tierLimits: variable('TIER_LIMITS', parsedText(parseTierLimits).prefault('free:1,pro:5,enterprise:25')),
  maxConcurrentAgentRuns: variable('MAX_CONCURRENT_AGENT_RUNS', int(1, 100_000).optional(), { limit: true }),
  memoryPerRunMb: variable('MEMORY_PER_RUN_MB', int(1, 1_000_000).default(200), { limit: true }),
  queueMax: variable('RUN_QUEUE_MAX', int(0, 1_000_000).optional(), { limit: true }),
  queueTimeoutMs: variable('RUN_QUEUE_TIMEOUT_MS', int(1, 86_400_000).default(30_000), { limit: true }),
  timeoutMs: variable('RUN_TIMEOUT_MS', int(1, 86_400_000).default(900_000), { limit: true }),
  maxTimeoutMs: variable('MAX_RUN_TIMEOUT_MS', int(1, 86_400_000).default(3_600_000)),
  sessionMaxInflight: variable('SESSION_MAX_INFLIGHT', int(1, 100_000).default(1), { limit: true }),
  maxEventsPerRun: variable('MAX_EVENTS_PER_RUN', int(1, 10_000_000).default(100_000), { limit: true }),
  maxEventBytes: variable('MAX_EVENT_BYTES', int(64, 16 * 1024 * 1024).default(262_144), { limit: true }),
  /** A run's events not yet archived or written to the fast stream, beyond which its emit waits (twice it: the run fails). */
  eventBacklogBytes: variable('RUN_EVENT_BACKLOG_BYTES', int(1024, 1024 * 1024 * 1024).default(4_194_304), { limit: true }),
  eventBacklogWaitMs: variable('RUN_EVENT_BACKLOG_WAIT_MS', int(1, 3_600_000).default(30_000), { limit: true }),
} as const;

/** The `db` section. */
const db = {
  /** Unset: the embedded PGlite database under `dataDir`. */
  url: variable('DATABASE_URL', url(['postgres:', 'postgresql:']).optional()),
  dataDir: variable('DATA_DIR', z.string().trim().min(1).default('./data')),
  maxConnections: variable('DB_MAX_CONNECTIONS', int(1, 10_000).optional(), { limit: true }),
  instances: variable('DB_INSTANCES', int(1, 1000).default(4), { limit: true }),
  acquireTimeoutMs: variable('DB_ACQUIRE_TIMEOUT_MS', int(1, 600_000).default(5_000)),
  /** Prepare parameterised statements once per connection (one round trip per statement, not two). */
  preparedStatements: variable('DB_PREPARED_STATEMENTS', bool.default(true)),
  /** Finished runs, their archived events, expired idempotency keys and dead instances' rows go after this many days. */
  retentionDays: variable('RUN_RETENTION_DAYS', int(1, 36_500).default(30), { limit: true }),
} as const;

/** The `redis` section. */
const redis = {
  /** Unset: the in-process event store (single instance only). */
  url: variable('REDIS_URL', url(['redis:', 'rediss:']).optional()),
  /** Seeds of a Redis Cluster (host:port list) instead of REDIS_URL; the two are exclusive. */
  clusterNodes: variable('REDIS_CLUSTER_NODES', parsedText(parseRedisClusterNodes).optional()),
  keyPrefix: variable(
    'REDIS_KEY_PREFIX',
    z
      .string()
      .regex(/^[A-Za-z0-9:._-]{0,64}$/, 'must be up to 64 letters, digits or :._-')
      .default('agentd:'),
  ),
  commandsQueueMax: variable('REDIS_COMMANDS_QUEUE_MAX', int(100, 10_000_000).optional(), { limit: true }),
} as const;

/** The `events` section. */
const events = {
  streamTtlSeconds: variable('STREAM_TTL_SECONDS', int(1, 30 * 86_400).default(600)),
  streamMaxLen: variable('STREAM_MAXLEN', int(100, 10_000_000).default(10_000)),
  streamMaxBytes: variable('STREAM_MAX_BYTES', int(1024, 1024 * 1024 * 1024).default(8_388_608), { limit: true }),
  /** In-process store only: what ended runs keep in total. */
  streamMemoryMaxBytes: variable('STREAM_MEMORY_MAX_BYTES', int(1024, 64 * 1024 * 1024 * 1024).default(67_108_864), { limit: true }),
  archiveFlushMs: variable('ARCHIVE_FLUSH_MS', int(10, 60_000).default(1_000)),
} as const;

/** The `sse` section. */
const sse = {
  heartbeatMs: variable('SSE_HEARTBEAT_MS', int(100, 600_000).default(15_000)),
  maxBufferBytes: variable('SSE_MAX_BUFFER_BYTES', int(1024, 1024 * 1024 * 1024).default(1_048_576)),
  maxListenersPerAccount: variable('SSE_MAX_LISTENERS_PER_ACCOUNT', int(1, 10_000_000).default(2_500), { limit: true }),
} as const;

/** The `webhooks` section. */
const webhooks = {
  /** Signs every delivery (`whsec_<base64>` or raw text); unset: runs with a `webhook` are refused (400). The same on every instance. */
  secret: variable('WEBHOOK_SECRET', parsedText(parseWebhookSecret).optional(), { secret: true }),
  /** Lets webhooks target loopback, private and link-local addresses (tests, a private network). */
  allowPrivate: variable('WEBHOOK_ALLOW_PRIVATE', bool.default(false)),
  /** Attempts per delivery at most, the first included. */
  maxAttempts: variable('WEBHOOK_MAX_ATTEMPTS', int(1, 100).default(12), { limit: true }),
  /** No attempt starts later than this after the run ended. */
  maxAgeMs: variable('WEBHOOK_MAX_AGE_MS', int(1_000, 7 * 86_400_000).default(86_400_000)),
  /** One attempt (DNS, connect, the answer's status line) takes at most this long. */
  timeoutMs: variable('WEBHOOK_TIMEOUT_MS', int(100, 300_000).default(10_000), { limit: true }),
  /** The pause before the first retry; each further one doubles (jittered, at most an hour). */
  retryBaseMs: variable('WEBHOOK_RETRY_BASE_MS', int(1, 3_600_000).default(5_000)),
  /** Deliveries this instance attempts at once. */
  concurrency: variable('WEBHOOK_CONCURRENCY', int(1, 10_000).default(16), { limit: true }),
} as const;

/** The `agents` section: agents loaded at start-up and the worker threads they offload CPU-heavy work to. */
const agents = {
  /** A folder of ES modules (.js, .mjs), each exporting agents made with defineAgent; unset: the built-in agents only. */
  dir: variable('AGENTS_DIR', z.string().trim().min(1).optional()),
  /** Worker threads of ctx.offload; unset: the container-aware CPU count, at most 16. */
  offloadThreads: variable('OFFLOAD_THREADS', int(1, 1024).optional(), { limit: true }),
  /** Offloaded tasks that may wait for a thread; one more fails with offload_queue_full. Unset: 16 per thread. */
  offloadQueueMax: variable('OFFLOAD_QUEUE_MAX', int(0, 1_000_000).optional(), { limit: true }),
} as const;

/** The `llm` section; `env` resolves the API keys LLM_PROVIDERS names. */
const llmVariables = (env: NodeJS.ProcessEnv) =>
  ({
    /** OpenAI-compatible providers; empty: no `chat` agent. Secret: a bad value may have a key pasted into it. */
    providers: variable('LLM_PROVIDERS', parsedText((text) => parseLlmProviders(text, env)).prefault('[]'), { secret: true }),
    /** Unset: = run slots (sized at start-up). */
    globalMaxInflight: variable('GLOBAL_MAX_INFLIGHT', int(1, 100_000).optional(), { limit: true }),
    timeoutMs: variable('LLM_TIMEOUT_MS', int(1, 86_400_000).default(240_000), { limit: true }),
    webSearchTimeoutMs: variable('LLM_WEB_SEARCH_TIMEOUT_MS', int(1, 86_400_000).default(300_000)),
    thinkingTimeoutMs: variable('LLM_THINKING_TIMEOUT_MS', int(1, 86_400_000).default(360_000)),
    webThinkingTimeoutMs: variable('LLM_WEB_THINKING_TIMEOUT_MS', int(1, 86_400_000).default(420_000)),
    idleTimeoutMs: variable('LLM_IDLE_TIMEOUT_MS', int(1, 86_400_000).default(60_000), { limit: true }),
    thinkingModels: variable('LLM_THINKING_MODELS', parsedText(parseModelPatterns).prefault('*thinking*,o1*,o3*')),
    maxRetries: variable('LLM_MAX_RETRIES', int(0, 20).default(3), { limit: true }),
    /** Unset: every `auto` request goes to the first provider's first model. */
    routingRules: variable('LLM_ROUTING_RULES', parsedText(parseRoutingRules).optional()),
    routingCacheTtlMs: variable('ROUTING_CACHE_TTL_MS', int(0, 86_400_000).default(180_000)),
  }) as const;

/**
 * Every environment variable agentd reads, by section, each written once: the config key, the
 * variable's name and its parser (with its default). `.env.example` lists the same names with
 * their defaults (a test holds the two together). Optional variables without a default are
 * auto-sized or simply absent. `env` is there for LLM_PROVIDERS, whose entries name the
 * variables holding their API keys.
 */
export function configSchema(env: NodeJS.ProcessEnv) {
  return { server, runs, db, redis, events, sse, webhooks, agents, llm: llmVariables(env) } as const;
}
