import { WEBHOOK_URL_MAX_LENGTH } from '../runtime/webhook-target.js';
import { z } from 'zod';
import { EVENT_ID, RUN_STATUSES } from '../domain/index.js';

/**
 * The zod schemas requests are validated with: the routes parse with them and the OpenAPI
 * document (`openapi/`) is generated from them, so the two cannot drift. Schemas that depend
 * on the configuration are built by functions; build them once (a zod schema costs far more to
 * build than to use).
 */

export const DEFAULT_PAGE = 50;
export const MAX_PAGE = 200;

/** The body of POST /v1/runs and /v1/runs/stream; `timeout_ms` at most MAX_RUN_TIMEOUT_MS. */
export function runRequestBody(maxRunTimeoutMs: number) {
  return z
    .object({
      agent: z.string().min(1).max(100).meta({ description: 'The agent to run (GET /v1/agents lists them).' }),
      input: z.unknown().optional().meta({ description: "The agent's input, checked against its input_schema; default null." }),
      session_id: z
        .string()
        .min(1)
        .max(200)
        .nullish()
        .meta({ description: 'Runs of one session are limited to SESSION_MAX_INFLIGHT at once.' }),
      model: z.string().min(1).max(200).nullish(),
      timeout_ms: z
        .number()
        .int()
        .min(1)
        .max(maxRunTimeoutMs)
        .nullish()
        .meta({ description: 'Counted from the start of `running`; default RUN_TIMEOUT_MS.' }),
      metadata: z.record(z.string(), z.unknown()).nullish(),
      webhook: z
        .string()
        .min(1)
        .max(WEBHOOK_URL_MAX_LENGTH)
        .nullish()
        .meta({ description: 'POSTed the run record, signed (Standard Webhooks), when the run ends; needs WEBHOOK_SECRET.' }),
    })
    .strict();
}

/** A query string of printable text (Postgres refuses U+0000; control characters are never ids). */
const queryText = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .regex(/^[^\u0000-\u001f]*$/, 'must not contain control characters');

/** The query of GET /v1/runs. */
export const runListQuery = z.object({
  status: z.enum(RUN_STATUSES).optional(),
  agent: queryText(100).optional(),
  session_id: queryText(200).optional(),
  limit: z.coerce.number().int().min(1).max(MAX_PAGE).default(DEFAULT_PAGE),
  cursor: z.string().max(200).optional().meta({ description: "The previous page's next_cursor (opaque)." }),
});

/** The Idempotency-Key header of run-creating requests. */
export const idempotencyKey = z.string().min(1).max(200).meta({
  description: 'A repeat with the same key and body from the same account within 24 h returns the first run.',
});

/** An event id `<ms>-<seq>` as `?after=` and `Last-Event-ID` take it. */
export const eventIdText = z.string().regex(EVENT_ID).meta({ description: 'Resume strictly after this event id.' });

/** The bodies of POST /v1/admin/accounts and PATCH /v1/admin/accounts/:id; tiers as TIER_LIMITS names them. */
export function accountBodies(tierNames: readonly string[]) {
  const tier = z.string().refine((t) => tierNames.includes(t), {
    message: `must be one of: ${tierNames.join(', ')} (TIER_LIMITS)`,
  });
  // The document lists the tiers; the check above keeps the message naming TIER_LIMITS.
  const documentedTier = tier.meta({ override: { type: 'string', enum: [...tierNames] } });
  return {
    create: z.object({ name: z.string().trim().min(1).max(200), tier: documentedTier }).strict(),
    patch: z.object({ tier: documentedTier }).strict(),
  };
}
