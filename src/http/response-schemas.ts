import { z } from 'zod';
import { RUN_STATUSES } from '../domain/index.js';

/**
 * The zod schemas of what the routes answer, for the OpenAPI document (`openapi/`); the views
 * that build the answers are typed by them (`runView` returns a `RunBody`), and a test checks
 * real answers against the document. Objects here are described as they are today; the
 * document lets them gain properties (the contract changes only by adding).
 */

const timestamp = z.string().meta({ format: 'date-time', description: 'ISO 8601, UTC.' });
const uuid = z.string().meta({ format: 'uuid' });

export const runErrorSchema = z.object({
  code: z.string().meta({ description: 'agent_error, timeout, capacity_exhausted, provider_error, instance_lost, shutdown, …' }),
  message: z.string(),
});

/** A run as GET /v1/runs/:id shows it (and POST /v1/runs answers it). */
export const runSchema = z.object({
  id: uuid,
  status: z.enum(RUN_STATUSES),
  agent: z.string(),
  session_id: z.string().nullable(),
  created_at: timestamp,
  started_at: timestamp.nullable(),
  finished_at: timestamp.nullable(),
  error: runErrorSchema.optional().meta({ description: 'Why the run did not complete.' }),
  output: z.unknown().optional().meta({ description: 'The data of its last `message` event, if any.' }),
  instance_id: z.string().meta({ description: 'The instance that runs it (INSTANCE_ID).' }),
  webhook: z
    .object({
      url: z.string(),
      state: z.enum(['pending', 'delivered', 'failed']),
      attempts: z.number().int(),
      last_status: z.number().int().optional().meta({ description: 'The HTTP status of the last attempt, when it got one.' }),
      last_error: z.string().optional().meta({ description: 'Why the last attempt failed, when it did.' }),
    })
    .optional()
    .meta({ description: 'The delivery of the run record to its webhook, for a run created with one.' }),
  events_url: z.string().meta({ description: 'The path of its event stream, /v1/runs/<id>/events.' }),
});
export type RunBody = z.output<typeof runSchema>;

export const runListSchema = z.object({
  runs: z.array(runSchema).meta({ description: 'Newest first.' }),
  next_cursor: z.string().nullable().meta({ description: 'Pass as ?cursor= for the next page; null on the last.' }),
});

export const cancelSchema = z.object({ id: uuid, status: z.enum(RUN_STATUSES) });

export const streamTokenSchema = z.object({
  token: z.string().meta({ description: "Opens this run's event stream as ?token= until expires_at; for nothing else." }),
  expires_at: timestamp,
  events_url: z.string().meta({ description: "The path of the run's events with the token: new EventSource(<base URL> + events_url)." }),
});

export const agentsSchema = z.object({
  agents: z.array(
    z.object({
      name: z.string(),
      description: z.string(),
      input_schema: z.record(z.string(), z.unknown()).meta({ description: "JSON Schema of the agent's input." }),
    }),
  ),
});

export const accountSchema = z.object({ id: uuid, name: z.string(), tier: z.string(), created_at: timestamp });
export type AccountBody = z.output<typeof accountSchema>;

export const accountWithKeysSchema = accountSchema.extend({
  keys: z.array(z.object({ key_prefix: z.string(), created_at: timestamp, revoked_at: timestamp.nullable() })),
});

export const issuedKeySchema = z.object({
  api_key: z.string().meta({ description: 'Shown once; only its hash is stored.' }),
  key_prefix: z.string().meta({ description: 'Its first 8 characters (not secret): names it for revocation.' }),
});

export const accountCreatedSchema = accountSchema.extend(issuedKeySchema.shape);

export const keyRevokedSchema = z.object({ key_prefix: z.string(), revoked: z.literal(true) });

/** A sized figure and the limit that set it, e.g. `cgroup cpu.max /sys/fs/cgroup/…/cpu.max (1.5 cores)` or `os.totalmem()`. */
const sourcedFigure = z.looseObject({
  value: z.number(),
  source: z.string().meta({ description: 'The limit that won: a cgroup file, process.constrainedMemory(), or the host figure.' }),
});

/** Loosely typed: the operator's view grows with the runtime. */
export const capacitySchema = z.looseObject({
  instance_id: z.string(),
  detected: z.looseObject({ cpus: z.number(), memory_bytes: z.number() }),
  sizing: z
    .looseObject({
      cpus: sourcedFigure,
      memory_bytes: sourcedFigure,
      run_slots: z.looseObject({
        value: z.number(),
        bound_by: z.enum(['cpus', 'memory', 'cap', 'env']).meta({
          description: 'What bounded the run slots: the CPU or memory figure, the 2000 cap, or MAX_CONCURRENT_AGENT_RUNS (env).',
        }),
        workers: z
          .number()
          .meta({ description: 'Processes sharing the machine (WORKERS); auto run slots are a share of the machine each.' }),
      }),
    })
    .meta({ description: 'The figures this process was sized for, each with the limit that won, and what bounded its run slots.' }),
  limits: z.record(z.string(), z.looseObject({ value: z.unknown(), source: z.enum(['auto', 'env', 'default']) })),
  runs: z.looseObject({ capacity: z.number(), in_use: z.number(), queued: z.number() }),
  db_pool: z.looseObject({ max: z.number(), in_use: z.number(), idle: z.number(), waiting: z.number() }),
});

export const healthSchema = z.object({ status: z.literal('ok') });

export const readySchema = z.object({
  status: z.literal('ready'),
  degraded: z.array(z.string()).optional().meta({ description: 'Dependencies failing for less than the grace period.' }),
});

export const notReadySchema = z.object({
  status: z.literal('not_ready'),
  failures: z.array(z.string()),
  retry_after_s: z.number().int().meta({ description: 'As the Retry-After header.' }),
  degraded: z.array(z.string()).optional(),
});
