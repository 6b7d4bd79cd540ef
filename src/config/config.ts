import { hostname } from 'node:os';
import type { z } from 'zod';
import { ConfigError } from '../domain/index.js';
import { CLI_ENV } from './cli-env.js';
import { checkRoutingRules } from './llm-providers.js';
import { type NearMiss, nearMisses } from './near-miss.js';
import { MAX_WORKERS, configSchema } from './schema.js';
import { isSet, nameRead, type Variable } from './variable.js';
import { redactPasswords } from '../lib/redact-url.js';
import { issuePhrase } from '../lib/zod-issue.js';

type Schema = ReturnType<typeof configSchema>;
type SectionName = keyof Schema;
type ValuesOf<S> = { readonly [K in keyof S]: S[K] extends Variable<string, infer T> ? z.output<T> : never };
type VariableOf<S> = S[keyof S];

/** Every environment variable agentd reads (the schema's, by name). */
export type EnvName = { [S in SectionName]: VariableOf<Schema[S]> extends Variable<infer N> ? N : never }[SectionName];

/** Where a value came from: set in the environment, or the schema's default (or unset). */
export type ValueSource = 'env' | 'default';

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

/** The parsed configuration, by section (`configSchema`); each part of agentd gets its section. */
export type Config = { readonly [S in SectionName]: ValuesOf<Schema[S]> } & {
  /** INSTANCE_ID, else `<hostname>:<PORT>`; `/<slot>` appended in a cluster worker. */
  readonly instanceId: string;
  /** Set in a worker forked by the cluster primary; null in a primary or a lone process. */
  readonly worker: WorkerSlot | null;
  /** Which variables were set in the environment and which took their default. */
  readonly sources: Readonly<Record<EnvName, ValueSource>>;
  /** Variables set that agentd does not read but that look like one it does (start-up warns of each). */
  readonly nearMisses: readonly NearMiss[];
};

/** One variable of the schema with its section and key, in schema order. */
export interface VariableEntry {
  readonly section: SectionName;
  readonly key: string;
  readonly variable: Variable;
}

/** Every variable of the schema (for the limits table and `.env.example` checks). */
export function configVariables(): VariableEntry[] {
  const schema = configSchema({});
  return (Object.keys(schema) as SectionName[]).flatMap((section) =>
    Object.entries(schema[section] as Record<string, Variable>).map(([key, variable]) => ({ section, key, variable })),
  );
}

/**
 * A value as a message about it shows it: not at all for a secret variable, else quoted with
 * the password of any URL in it replaced by `***`.
 */
function shownValue(variable: Variable, raw: string | undefined): string {
  if (raw === undefined) return 'nothing';
  if (variable.secret) return `a value of ${raw.length} characters, not shown`;
  return JSON.stringify(redactPasswords(raw));
}

/**
 * Reads the environment once into a frozen Config. Throws ConfigError naming every bad
 * variable and the value it got (secrets not shown, URL passwords as `***`). Empty strings
 * count as unset.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  const schema = configSchema(env);
  const sections: Record<string, Record<string, unknown>> = {};
  const sources: Record<string, ValueSource> = {};
  for (const section of Object.keys(schema) as SectionName[]) {
    const values: Record<string, unknown> = {};
    for (const [key, variable] of Object.entries(schema[section] as Record<string, Variable>)) {
      const name = nameRead(variable, env);
      const raw = env[name];
      const present = isSet(raw);
      sources[variable.env] = present ? 'env' : 'default';
      const result = variable.schema.safeParse(present ? raw : undefined);
      if (result.success) values[key] = result.data;
      else problems.push(`${name} ${issuePhrase(result.error)} (got ${shownValue(variable, raw)})`);
    }
    sections[section] = Object.freeze(values);
  }
  const worker = parseWorkerSlot(env[WORKER_ENV], problems);
  if (problems.length > 0) throw invalid(problems);
  const parsed = sections as unknown as Pick<Config, SectionName>;
  checkTogether(parsed, sources, env, problems);
  if (problems.length > 0) throw invalid(problems);
  const configuredId = parsed.server.configuredInstanceId ?? `${hostname()}:${parsed.server.port}`;
  return Object.freeze({
    ...parsed,
    // Each worker slot has its own id, the same after a restart, so it ends its own leftover runs.
    instanceId: worker === null ? configuredId : `${configuredId}/${worker.slot}`,
    worker,
    sources: Object.freeze(sources) as Record<EnvName, ValueSource>,
    nearMisses: Object.freeze(nearMissesOf(env, parsed.llm.providers)),
  });
}

/** Near misses among `env`'s names, the variables that LLM_PROVIDERS names for keys and AGENTD_WORKER being read too. */
function nearMissesOf(env: NodeJS.ProcessEnv, providers: Config['llm']['providers']): NearMiss[] {
  const keyVariables = providers.flatMap((provider) => (provider.apiKeyEnv === null ? [] : [provider.apiKeyEnv]));
  const known = configVariables().flatMap((entry) => [entry.variable.env, ...entry.variable.aliases]);
  return nearMisses(env, known, new Set([WORKER_ENV, ...Object.values(CLI_ENV), ...keyVariables]));
}

function invalid(problems: readonly string[]): ConfigError {
  return new ConfigError(`Invalid configuration:\n  ${problems.join('\n  ')}`);
}

/** Rules between variables; each problem names the variable it is about. */
function checkTogether(
  config: Pick<Config, SectionName>,
  sources: Record<string, ValueSource>,
  env: NodeJS.ProcessEnv,
  problems: string[],
): void {
  const noRedis = sources.REDIS_URL === 'default' && sources.REDIS_CLUSTER_NODES === 'default';
  if (config.server.workers !== 1 && (sources.DATABASE_URL === 'default' || noRedis)) {
    const name = isSet(env.WORKERS) ? 'WORKERS' : 'WEB_CONCURRENCY';
    problems.push(
      `${name} needs DATABASE_URL and REDIS_URL (or REDIS_CLUSTER_NODES), which its worker processes share runs, events and cancels through ` +
        `(got ${JSON.stringify(env[name])})`,
    );
  }
  if (config.redis.url !== undefined && config.redis.clusterNodes !== undefined) {
    problems.push(
      'REDIS_URL and REDIS_CLUSTER_NODES are exclusive: set REDIS_URL for one Redis server or REDIS_CLUSTER_NODES for a cluster ' +
        `(got both: REDIS_CLUSTER_NODES=${JSON.stringify(env.REDIS_CLUSTER_NODES)})`,
    );
  }
  if (config.runs.timeoutMs > config.runs.maxTimeoutMs) {
    problems.push(`RUN_TIMEOUT_MS must not exceed MAX_RUN_TIMEOUT_MS (got ${config.runs.timeoutMs} > ${config.runs.maxTimeoutMs})`);
  }
  if (config.runs.eventBacklogBytes < config.runs.maxEventBytes) {
    problems.push(
      `RUN_EVENT_BACKLOG_BYTES must be at least MAX_EVENT_BYTES, so a run's backlog holds its largest event ` +
        `(got ${config.runs.eventBacklogBytes} < ${config.runs.maxEventBytes})`,
    );
  }
  const rules = config.llm.routingRules;
  if (rules !== undefined) {
    try {
      checkRoutingRules(rules, config.llm.providers);
    } catch (error) {
      problems.push(`LLM_ROUTING_RULES ${(error as Error).message} (got ${JSON.stringify(redactPasswords(env.LLM_ROUTING_RULES ?? ''))})`);
    }
  }
}

/** AGENTD_WORKER (`<slot>/<count>`), or null when unset; a malformed one is pushed to problems. */
function parseWorkerSlot(raw: string | undefined, problems: string[]): WorkerSlot | null {
  if (raw === undefined || raw.trim() === '') return null;
  const match = /^(\d+)\/(\d+)$/.exec(raw.trim());
  const slot = Number(match?.[1]);
  const count = Number(match?.[2]);
  if (match === null || slot < 1 || slot > count || count > MAX_WORKERS) {
    problems.push(
      `${WORKER_ENV} must be <slot>/<count> with 1 <= slot <= count <= ${MAX_WORKERS}; only the cluster primary sets it (got ${JSON.stringify(raw)})`,
    );
    return null;
  }
  return Object.freeze({ slot, count });
}
