import { Router, type Request, type Response } from 'express';
import type { RunCursor, RunRepository } from '../../db/run-repository.js';
import { InvalidRequestError, isFinal, NotFoundError, type RunRecord } from '../../domain/index.js';
import type { RunManager, SubmitRequest } from '../../runtime/run-manager.js';
import { RunWaiter } from '../../runtime/run-waiter.js';
import type { EventLog } from '../../streaming/event-log.js';
import type { Followers } from '../../streaming/followers.js';
import { accountOf } from '../auth.js';
import { idempotencyKey, runListQuery, runRequestBody } from '../request-schemas.js';
import { runView } from '../run-view.js';
import { parse, uuidParam } from '../validation.js';

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
  const schema = runRequestBody(maxRunTimeoutMs);
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
      webhook: parsed.webhook ?? null,
      idempotencyKey: header === undefined ? null : parse(idempotencyKey, header, 'Idempotency-Key'),
    };
  };
}

export interface RunsRouterDeps {
  readonly manager: RunManager;
  readonly runs: RunRepository;
  readonly eventLog: EventLog;
  /** A wait counts as one of its account's listeners (SSE_MAX_LISTENERS_PER_ACCOUNT) while it waits. */
  readonly listeners: Followers;
  readonly maxRunTimeoutMs: number;
  /** RUN_QUEUE_TIMEOUT_MS: part of how long a wait may take. */
  readonly queueTimeoutMs: number;
}

/**
 * How long POST /v1/runs/wait waits beyond the run's own bounds (its queue wait and its
 * timeout): time for a lost instance's run to be swept (3 heartbeats and a sweep) and more.
 */
export const WAIT_MARGIN_MS = 60_000;

/**
 * Answers a wait: 200 with the final record, or 202 with the record as it stands when the wait's
 * bound passed first; nothing when the client has left (the run goes on).
 */
async function answerWait(waiter: RunWaiter, run: RunRecord, limitMs: number, res: Response): Promise<void> {
  const gone = new AbortController();
  const onClose = () => gone.abort();
  res.on('close', onClose);
  if (res.destroyed) gone.abort(); // the client left while the run was admitted
  try {
    const current = (await waiter.wait(run, limitMs, gone.signal)) ?? run;
    if (gone.signal.aborted) return;
    res.status(isFinal(current.status) ? 200 : 202).json(runView(current));
  } finally {
    res.off('close', onClose);
  }
}

export function runsRouter(deps: RunsRouterDeps): Router {
  const router = Router();
  const runRequest = runRequestParser(deps.maxRunTimeoutMs);
  const waiter = new RunWaiter({ runs: deps.runs, eventLog: deps.eventLog });

  router.post('/v1/runs', async (req, res) => {
    const { run } = await deps.manager.submit(runRequest(req));
    res.status(202).location(`/v1/runs/${run.id}`).json(runView(run));
  });

  router.post('/v1/runs/wait', async (req, res) => {
    const submitted = runRequest(req);
    // Counted before the run exists: a wait refused for the account's listener limit starts no run.
    const release = deps.listeners.open(submitted.accountId);
    try {
      const { run } = await deps.manager.submit(submitted);
      res.location(`/v1/runs/${run.id}`).setHeader('x-run-id', run.id);
      await answerWait(waiter, run, deps.queueTimeoutMs + run.timeoutMs + WAIT_MARGIN_MS, res);
    } finally {
      release();
    }
  });

  router.get('/v1/runs', async (req, res) => {
    const account = accountOf(req);
    const query = parse(runListQuery, req.query, 'query');
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
