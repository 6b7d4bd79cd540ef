import type { Request } from 'express';
import { Router } from 'express';
import type { RunRepository } from '../../db/run-repository.js';
import { type EventId, InvalidRequestError, isFinal, type Logger, NotFoundError, parseEventId } from '../../domain/index.js';
import { RunEndRecovery } from '../../runtime/run-end-recovery.js';
import type { RunManager } from '../../runtime/run-manager.js';
import type { EventLog } from '../../streaming/event-log.js';
import type { Followers } from '../../streaming/followers.js';
import { RunStream, type RunStreamDeps } from '../sse/run-stream.js';
import { accountOf } from '../auth.js';
import { runRequestParser } from './runs.js';
import { uuidParam } from '../validation.js';

/** How long a resume of a finished run waits for its `end` to be known (live, or in the archive). */
export const END_WAIT_MS = 2_000;

export interface EventsRouterDeps {
  readonly manager: RunManager;
  readonly runs: RunRepository;
  readonly eventLog: EventLog;
  readonly logger: Logger;
  readonly listeners: Followers;
  readonly heartbeatMs: number;
  readonly maxBufferBytes: number;
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

/** GET /v1/runs/:id/events and POST /v1/runs/stream. */
export function eventsRouter(deps: EventsRouterDeps): Router {
  const router = Router();
  const runRequest = runRequestParser(deps.maxRunTimeoutMs);

  const streams: RunStreamDeps = {
    eventLog: deps.eventLog,
    logger: deps.logger,
    followers: deps.listeners,
    ends: new RunEndRecovery({ runs: deps.runs, eventLog: deps.eventLog, logger: deps.logger }),
    heartbeatMs: deps.heartbeatMs,
    maxBufferBytes: deps.maxBufferBytes,
  };

  router.get('/v1/runs/:id/events', async (req, res) => {
    const account = accountOf(req);
    const run = await deps.runs.get(account.id, uuidParam(req.params.id));
    if (run === null) throw new NotFoundError();
    const after = resumePoint(req);
    // Past the `end` there is nothing left to send.
    if (after !== null && isFinal(run.status) && (await deps.eventLog.isPastEnd(run.id, after, END_WAIT_MS))) {
      res.status(204).end();
      return;
    }
    await RunStream.open(streams, res, account.id).bind(run).serve(after);
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
