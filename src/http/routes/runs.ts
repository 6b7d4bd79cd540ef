import { Router, type Request } from 'express';
import { z } from 'zod';
import type { RunCursor, RunRepository } from '../../db/run-repository.js';
import { InvalidRequestError, NotFoundError, RUN_STATUSES } from '../../domain/index.js';
import type { RunManager, SubmitRequest } from '../../runtime/run-manager.js';
import { accountOf } from '../auth.js';
import { runView } from '../run-view.js';
import { parse, uuidParam } from '../validation.js';

const DEFAULT_PAGE = 50;
const MAX_PAGE = 200;

function createRunBody(maxRunTimeoutMs: number) {
  return z
    .object({
      agent: z.string().min(1).max(100),
      input: z.unknown().optional(),
      session_id: z.string().min(1).max(200).nullish(),
      model: z.string().min(1).max(200).nullish(),
      timeout_ms: z.number().int().min(1).max(maxRunTimeoutMs).nullish(),
      metadata: z.record(z.string(), z.unknown()).nullish(),
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

const listQuery = z.object({
  status: z.enum(RUN_STATUSES).optional(),
  agent: queryText(100).optional(),
  session_id: queryText(200).optional(),
  limit: z.coerce.number().int().min(1).max(MAX_PAGE).default(DEFAULT_PAGE),
  cursor: z.string().max(200).optional(),
});

const idempotencyKey = z.string().min(1).max(200);

function encodeCursor(cursor: RunCursor): string {
  return Buffer.from(JSON.stringify([cursor.createdAt.toISOString(), cursor.id])).toString('base64url');
}

/**
 * The created_at of a cursor: exactly as encodeCursor writes it (toISOString), in years 0001
 * to 9999, where JavaScript and Postgres both read it back to the same instant.
 */
const CURSOR_DATE = /^(?!0000)\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

function decodeCursor(text: string): RunCursor {
  try {
    const decoded: unknown = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
    if (!Array.isArray(decoded) || decoded.length !== 2) throw new Error('not a pair');
    const [createdAt, id] = decoded as [unknown, unknown];
    if (typeof createdAt !== 'string' || !CURSOR_DATE.test(createdAt)) throw new Error('bad date');
    const date = new Date(createdAt);
    if (Number.isNaN(date.getTime()) || date.toISOString() !== createdAt) throw new Error('bad date');
    return { createdAt: date, id: uuidParam(id) };
  } catch {
    throw new InvalidRequestError('cursor: is not a cursor this server returned.', 'cursor');
  }
}

/**
 * The parser of run-creating requests (POST /v1/runs and /v1/runs/stream) of the
 * authenticated account. Built once per router: a zod schema costs far more to build than
 * to use.
 */
export function runRequestParser(maxRunTimeoutMs: number): (req: Request) => SubmitRequest {
  const schema = createRunBody(maxRunTimeoutMs);
  return (req) => {
    const body: unknown = req.body;
    if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
      throw new InvalidRequestError('The body must be a JSON object like {"agent": "echo", "input": "hi"}.', 'body');
    }
    const parsed = parse(schema, body, 'body');
    const header = req.headers['idempotency-key'];
    return {
      accountId: accountOf(req).id,
      agent: parsed.agent,
      input: parsed.input ?? null,
      sessionId: parsed.session_id ?? null,
      model: parsed.model ?? null,
      timeoutMs: parsed.timeout_ms ?? null,
      metadata: parsed.metadata ?? null,
      idempotencyKey: header === undefined ? null : parse(idempotencyKey, header, 'Idempotency-Key'),
    };
  };
}

export function runsRouter(deps: { manager: RunManager; runs: RunRepository; maxRunTimeoutMs: number }): Router {
  const router = Router();
  const runRequest = runRequestParser(deps.maxRunTimeoutMs);

  router.post('/v1/runs', async (req, res) => {
    const { run } = await deps.manager.submit(runRequest(req));
    res.status(202).location(`/v1/runs/${run.id}`).json(runView(run));
  });

  router.get('/v1/runs', async (req, res) => {
    const account = accountOf(req);
    const query = parse(listQuery, req.query, 'query');
    const cursor = query.cursor === undefined ? null : decodeCursor(query.cursor);
    const page = await deps.runs.list(
      account.id,
      { status: query.status, agent: query.agent, sessionId: query.session_id },
      query.limit + 1,
      cursor,
    );
    const runs = page.slice(0, query.limit);
    const last = runs.at(-1);
    const more = page.length > query.limit && last !== undefined;
    res.json({ runs: runs.map(runView), next_cursor: more ? encodeCursor({ createdAt: last.createdAt, id: last.id }) : null });
  });

  router.get('/v1/runs/:id', async (req, res) => {
    const run = await deps.runs.get(accountOf(req).id, uuidParam(req.params.id));
    if (run === null) throw new NotFoundError();
    res.json(runView(run));
  });

  router.post('/v1/runs/:id/cancel', async (req, res) => {
    const run = await deps.manager.cancel(accountOf(req).id, uuidParam(req.params.id));
    res.status(202).json({ id: run.id, status: run.status });
  });

  return router;
}
