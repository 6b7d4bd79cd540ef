import type { Request, Response } from 'express';
import { Router } from 'express';
import type { RunRepository } from '../../db/run-repository.js';
import {
  type EventId,
  InvalidRequestError,
  isFinal,
  type Logger,
  NotFoundError,
  parseEventId,
  type RunStatus,
} from '../../domain/index.js';
import type { RunManager } from '../../runtime/run-manager.js';
import { RunStream, type RunStreamDeps } from '../sse/run-stream.js';
import { accountOf } from '../auth.js';
import { runRequestParser } from './runs.js';
import { uuidParam } from '../validation.js';

/** How long a resume of a finished run waits for its `end` to be known (live, or in the archive). */
export const END_WAIT_MS = 2_000;

export interface EventsRouterDeps {
  readonly manager: RunManager;
  readonly runs: RunRepository;
  /** What every event stream of the app shares (app.ts builds it once). */
  readonly streams: RunStreamDeps;
  readonly logger: Logger;
  readonly maxRunTimeoutMs: number;
}

/** `?after=` wins over `Last-Event-ID`; a malformed id is 400. */
export function resumePoint(req: Request): EventId | null {
  const query = req.query.after;
  const header = req.headers['last-event-id'];
  const [field, raw] = query !== undefined ? ['after', query] : ['Last-Event-ID', header];
  if (raw === undefined) return null;
  const id = typeof raw === 'string' ? parseEventId(raw.trim()) : null;
  if (id === null) throw new InvalidRequestError(`${field}: must be an event id like 1700000000000-0.`, field);
  return id;
}

/**
 * Serves `run`'s events from the request's resume point (`after`, else Last-Event-ID), counted
 * among `followersKey`'s listeners; 204 when the resume point is the run's `end`: past it there
 * is nothing left to send. The one way a run's events are read over HTTP (the API and the dashboard).
 */
export async function serveRunEvents(
  streams: RunStreamDeps,
  req: Request,
  res: Response,
  run: { readonly id: string; readonly accountId: string; readonly status: RunStatus },
  followersKey: string,
): Promise<void> {
  const after = resumePoint(req);
  if (after !== null && isFinal(run.status) && (await streams.eventLog.isPastEnd(run.id, after, END_WAIT_MS))) {
    res.status(204).end();
    return;
  }
  await RunStream.open(streams, res, followersKey).bind(run).serve(after);
}

/** GET /v1/runs/:id/events and POST /v1/runs/stream. */
export function eventsRouter(deps: EventsRouterDeps): Router {
  const router = Router();
  const runRequest = runRequestParser(deps.maxRunTimeoutMs);
  const { streams } = deps;

  router.get('/v1/runs/:id/events', async (req, res) => {
    const account = accountOf(req);
    const run = await deps.runs.get(account.id, uuidParam(req.params.id));
    if (run === null) throw new NotFoundError();
    await serveRunEvents(streams, req, res, run, account.id);
  });

  router.post('/v1/runs/stream', async (req, res) => {
    const submitted = runRequest(req);
    const cancelOnDisconnect = req.query.cancel_on_disconnect === 'true';
    // Counted before the run exists: a stream refused for the account's listener limit starts no run.
    const stream = RunStream.open(streams, res, submitted.accountId);
    let run;
    try {
      ({ run } = await deps.manager.submit(submitted));
    } catch (error) {
      stream.release();
      throw error;
    }
    const { clientLeft } = await stream.bind(run).serve(null, { 'x-run-id': run.id });
    if (clientLeft && cancelOnDisconnect) {
      deps.manager.cancel(submitted.accountId, run.id).catch((error: unknown) => {
        deps.logger.warn('cancel on disconnect failed', { run_id: run.id, error });
      });
    }
  });

  return router;
}
