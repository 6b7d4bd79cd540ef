import { z } from 'zod';
import { accountBodies, eventIdText, idempotencyKey, runListQuery, runRequestBody } from '../request-schemas.js';
import {
  accountCreatedSchema,
  accountSchema,
  accountWithKeysSchema,
  agentsSchema,
  cancelSchema,
  capacitySchema,
  healthSchema,
  issuedKeySchema,
  keyRevokedSchema,
  notReadySchema,
  readySchema,
  runListSchema,
  runSchema,
  streamTokenSchema,
} from '../response-schemas.js';
import type { ApiErrorCode } from './api-errors.js';

/**
 * The route table of the OpenAPI document: one entry per mounted route (a test walks the
 * Express router and holds the two together). A new route is added here with its request
 * schemas (from `request-schemas.ts`, the ones it parses with), its answers and its error codes.
 */

/** Who may call: the document's security requirement; the builder adds the codes each implies (401…). */
export type ApiSecurity = 'public' | 'apiKey' | 'admin' | 'metrics' | 'apiKeyOrStreamToken';

export interface ApiResponse {
  readonly description: string;
  /** Media type → schema; none for an empty answer (204). */
  readonly content?: Readonly<Record<string, z.ZodType>>;
  /** Response headers besides X-Request-Id (on every answer). */
  readonly headers?: Readonly<Record<string, z.ZodType>>;
}

export interface ApiOperation {
  readonly method: 'get' | 'post' | 'patch' | 'delete';
  /** OpenAPI style (`/v1/runs/{id}`); path parameters are described by name (`PATH_PARAMETERS`). */
  readonly path: string;
  readonly operationId: string;
  readonly summary: string;
  readonly description?: string;
  readonly tag: 'operations' | 'accounts' | 'runs' | 'events' | 'agents';
  readonly security: ApiSecurity;
  /** A JSON body; the builder adds the codes of the body parser (invalid_json, 413, 415). */
  readonly body?: z.ZodType;
  readonly query?: z.ZodObject;
  readonly headers?: z.ZodObject;
  /** Successful answers by status. */
  readonly responses: Readonly<Record<number, ApiResponse>>;
  /** Error codes of this route beyond those its security and body imply (and `internal`, always). */
  readonly errors: readonly ApiErrorCode[];
}

/** What the path parameters are, by name. */
export const PATH_PARAMETERS: Readonly<Record<string, z.ZodType>> = {
  id: z.string().meta({ format: 'uuid', description: 'A UUID; a malformed one is 404 not_found.' }),
  prefix: z.string().meta({ description: 'The key_prefix of a key (its first 8 characters).' }),
};

/** How an event stream is written, for the `text/event-stream` answers. */
export const EVENT_STREAM_FORMAT = [
  "Server-Sent Events: the run's events in order, from the first (or after the resume point), then live, ending with `end`, after which the server closes. Each event is",
  '',
  '    id: <ms>-<seq>',
  '    event: <type>',
  '    data: <one line of JSON>',
  '',
  'Types and data: `status` {"status"} (queued, running); `message` {"role": "assistant", "content"}; `token` {"text", ...}; `tool` {"name", "input", "output"}; `error` {"code", "message"} (before the end of a failed run); last `end` {"status": <final status>, "error"?}. Agents may emit types of their own (lowercase, matching ^[a-z][a-z0-9_.-]{0,63}$, never status, error or end) with any JSON data: a reader passes over types it does not know.',
  'A comment line `: ping` is sent every SSE_HEARTBEAT_MS while idle. Ids increase strictly within a run (compare them as number pairs); resume with Last-Event-ID or ?after=<id>: no gap, no duplicate.',
].join('\n');

const eventStream = (description: string, headers?: Record<string, z.ZodType>): ApiResponse => ({
  description,
  content: { 'text/event-stream': z.string().meta({ description: EVENT_STREAM_FORMAT }) },
  ...(headers === undefined ? {} : { headers }),
});
const json = (description: string, schema: z.ZodType, headers?: Record<string, z.ZodType>): ApiResponse => ({
  description,
  content: { 'application/json': schema },
  ...(headers === undefined ? {} : { headers }),
});

/** The schemas built from the configuration, shared by the routes' factories and the document. */
export interface ApiSchemaSettings {
  /** MAX_RUN_TIMEOUT_MS. */
  readonly maxRunTimeoutMs: number;
  /** The tiers of TIER_LIMITS. */
  readonly tierNames: readonly string[];
}

/** /healthz, /readyz, /metrics, /openapi.json and the dashboard's page. */
function operationRoutes(): ApiOperation[] {
  const common = { tag: 'operations', security: 'public', errors: [] } as const;
  return [
    {
      ...common,
      method: 'get',
      path: '/healthz',
      operationId: 'health',
      summary: 'The process serves',
      responses: { 200: json('Alive.', healthSchema) },
    },
    {
      ...common,
      method: 'get',
      path: '/readyz',
      operationId: 'ready',
      summary: 'Whether to send this instance traffic',
      description:
        'Ready when the database and the event store answer and the instance is not draining; a blip shorter than a few seconds shows as `degraded`.',
      responses: {
        200: json('Ready.', readySchema),
        503: json('Not ready: `failures` says why.', notReadySchema, {
          'Retry-After': z.string().meta({ description: 'Seconds to wait before retrying.' }),
        }),
      },
    },
    {
      ...common,
      method: 'get',
      path: '/metrics',
      operationId: 'metrics',
      summary: 'Prometheus metrics',
      description: 'Behind METRICS_TOKEN when it is set; with WORKERS > 1, the sum over every worker.',
      security: 'metrics',
      responses: { 200: { description: 'Prometheus text format.', content: { 'text/plain': z.string() } } },
      errors: ['metrics_unavailable'],
    },
    {
      ...common,
      method: 'get',
      path: '/openapi.json',
      operationId: 'openapi',
      summary: 'This document',
      responses: { 200: json('The OpenAPI 3.1 document of the contract.', z.record(z.string(), z.unknown())) },
    },
    {
      ...common,
      method: 'get',
      path: '/dashboard',
      operationId: 'dashboard',
      summary: "The operator's page",
      description:
        "A login form that takes the admin token (then the page itself, with an HttpOnly, SameSite=Strict session cookie). Exists only when ADMIN_TOKEN is set; its own assets and cookie-session endpoints under /dashboard/ are the page's, not part of the API.",
      responses: { 200: { description: 'HTML.', content: { 'text/html': z.string() } } },
      errors: ['not_found'],
    },
  ];
}

/** /v1/admin/*: accounts, keys and capacity, behind ADMIN_TOKEN. */
function adminRoutes(settings: ApiSchemaSettings): ApiOperation[] {
  const bodies = accountBodies(settings.tierNames);
  const common = { tag: 'accounts', security: 'admin' } as const;
  return [
    {
      ...common,
      method: 'get',
      path: '/v1/admin/capacity',
      operationId: 'getCapacity',
      summary: "This instance's sizing and live use",
      tag: 'operations',
      responses: { 200: json('Sizing, limits (with their source) and what is in use.', capacitySchema) },
      errors: [],
    },
    {
      ...common,
      method: 'post',
      path: '/v1/admin/accounts',
      operationId: 'createAccount',
      summary: 'Create an account with its first API key',
      body: bodies.create,
      responses: { 201: json('The account and its key, shown once.', accountCreatedSchema) },
      errors: [],
    },
    {
      ...common,
      method: 'get',
      path: '/v1/admin/accounts/{id}',
      operationId: 'getAccount',
      summary: 'An account with its key prefixes',
      responses: { 200: json('The account.', accountWithKeysSchema) },
      errors: [],
    },
    {
      ...common,
      method: 'patch',
      path: '/v1/admin/accounts/{id}',
      operationId: 'updateAccount',
      summary: "Change an account's tier",
      body: bodies.patch,
      responses: { 200: json('The account.', accountSchema) },
      errors: [],
    },
    {
      ...common,
      method: 'post',
      path: '/v1/admin/accounts/{id}/keys',
      operationId: 'issueKey',
      summary: 'Issue another API key',
      responses: { 201: json('The key, shown once.', issuedKeySchema) },
      errors: [],
    },
    {
      ...common,
      method: 'delete',
      path: '/v1/admin/keys/{prefix}',
      operationId: 'revokeKey',
      summary: 'Revoke a key (within 5 s on every instance)',
      responses: { 200: json('Revoked.', keyRevokedSchema) },
      errors: [],
    },
  ];
}

/** The codes of admitting a run (POST /v1/runs and /v1/runs/stream). */
const ADMISSION_ERRORS: readonly ApiErrorCode[] = [
  'unknown_agent',
  'idempotency_key_reused',
  'account_concurrency_limit',
  'session_concurrency_limit',
  'capacity_exhausted',
  'draining',
];

/** /v1/runs… and /v1/agents, with an API key. */
function runRoutes(runBody: z.ZodType): ApiOperation[] {
  const common = { tag: 'runs', security: 'apiKey' } as const;
  const location = { Location: z.string().meta({ description: 'The path of the run, /v1/runs/<id>.' }) };
  return [
    {
      ...common,
      method: 'get',
      path: '/v1/agents',
      operationId: 'listAgents',
      summary: 'The agents, with the JSON Schema of their input',
      tag: 'agents',
      responses: { 200: json('The agents.', agentsSchema) },
      errors: [],
    },
    {
      ...common,
      method: 'post',
      path: '/v1/runs',
      operationId: 'createRun',
      summary: 'Start a run',
      description: 'Never waits for a slot: the run is `running` or `queued` when it answers.',
      body: runBody,
      headers: z.object({ 'Idempotency-Key': idempotencyKey.optional() }),
      responses: { 202: json('The run, admitted.', runSchema, location) },
      errors: ADMISSION_ERRORS,
    },
    {
      ...common,
      method: 'post',
      path: '/v1/runs/wait',
      operationId: 'createRunAndWait',
      summary: 'Start a run and answer with its final record',
      description:
        'Admits the run as POST /v1/runs does, then answers once it ends (200), or with the record as it stands (202) when it is not final within its queue timeout, its timeout_ms and a margin. A client that disconnects leaves the run running.',
      body: runBody,
      headers: z.object({ 'Idempotency-Key': idempotencyKey.optional() }),
      responses: {
        200: json('The run, ended.', runSchema, location),
        202: json('The run, not ended within the wait.', runSchema, location),
      },
      errors: [...ADMISSION_ERRORS, 'listener_limit'],
    },
    {
      ...common,
      method: 'get',
      path: '/v1/runs',
      operationId: 'listRuns',
      summary: "The account's runs, newest first",
      query: runListQuery,
      responses: { 200: json('A page of runs.', runListSchema) },
      errors: ['invalid_request'],
    },
    {
      ...common,
      method: 'get',
      path: '/v1/runs/{id}',
      operationId: 'getRun',
      summary: 'A run',
      responses: { 200: json('The run.', runSchema) },
      errors: ['not_found'],
    },
    {
      ...common,
      method: 'post',
      path: '/v1/runs/{id}/cancel',
      operationId: 'cancelRun',
      summary: 'Cancel a run (idempotent; from any instance)',
      description: 'The run stops within 1 s and ends `cancelled`; a finished run keeps its final status.',
      responses: { 202: json('Its status now.', cancelSchema) },
      errors: ['not_found'],
    },
  ];
}

/** The event streams and the stream tokens that open them from a browser. */
function eventRoutes(runBody: z.ZodType): ApiOperation[] {
  const common = { tag: 'events', security: 'apiKey' } as const;
  const runId = { 'X-Run-Id': z.string().meta({ format: 'uuid', description: 'The id of the run the stream follows.' }) };
  const resume = z.object({ 'Last-Event-ID': eventIdText.optional() });
  return [
    {
      ...common,
      method: 'post',
      path: '/v1/runs/stream',
      operationId: 'createRunStream',
      summary: 'Start a run and answer with its event stream',
      body: runBody,
      query: z.object({
        cancel_on_disconnect: z
          .enum(['true', 'false'])
          .optional()
          .meta({ description: 'true: a client that disconnects cancels the run.' }),
      }),
      headers: z.object({ 'Idempotency-Key': idempotencyKey.optional() }),
      responses: { 200: eventStream("The run's events.", runId) },
      errors: [...ADMISSION_ERRORS, 'listener_limit'],
    },
    {
      ...common,
      method: 'get',
      path: '/v1/runs/{id}/events',
      operationId: 'getRunEvents',
      summary: "A run's events",
      description:
        "From any instance, while the run goes and after it ended. A browser's EventSource, which cannot send Authorization, authenticates with ?token= (POST /v1/runs/{id}/stream-token).",
      security: 'apiKeyOrStreamToken',
      query: z.object({ after: eventIdText.optional().meta({ description: 'Resume strictly after this id; wins over Last-Event-ID.' }) }),
      headers: resume,
      responses: {
        200: eventStream("The run's events."),
        204: { description: "The resume point is at or after the run's `end`: nothing is left to send." },
      },
      errors: ['invalid_request', 'not_found', 'listener_limit', 'stream_tokens_disabled'],
    },
    {
      ...common,
      method: 'post',
      path: '/v1/runs/{id}/stream-token',
      operationId: 'createStreamToken',
      summary: "A short-lived token that opens the run's event stream from a browser",
      description:
        "For EventSource, which cannot send headers: the token goes in the URL instead of the API key, is valid only for this run's GET /v1/runs/{id}/events, and only until expires_at (STREAM_TOKEN_TTL_SECONDS, default 300); a stream it opened runs on to the end.",
      responses: { 201: json('The token.', streamTokenSchema) },
      errors: ['not_found', 'stream_tokens_disabled'],
    },
  ];
}

/** Every operation of the API, with the schemas the routes build from the same settings. */
export function apiOperations(settings: ApiSchemaSettings): { operations: ApiOperation[]; components: Record<string, z.ZodType> } {
  const runBody = runRequestBody(settings.maxRunTimeoutMs);
  const operations = [...operationRoutes(), ...adminRoutes(settings), ...runRoutes(runBody), ...eventRoutes(runBody)];
  const components = {
    RunRequest: runBody,
    Run: runSchema,
    RunList: runListSchema,
    StreamToken: streamTokenSchema,
    Account: accountSchema,
    AccountWithKeys: accountWithKeysSchema,
    IssuedKey: issuedKeySchema,
  };
  return { operations, components };
}
