import type { Request, Response } from 'express';
import { Router } from 'express';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RunRepository } from '../../db/run-repository.js';
import { compareEventIds, type EventId, InvalidRequestError, isFinal, type Logger, NotFoundError, parseEventId } from '../../domain/index.js';
import type { RunManager } from '../../runtime/run-manager.js';
import type { EventLog } from '../../streaming/event-log.js';
import { followRun } from '../../streaming/run-follower.js';
import type { SseListeners } from '../sse/sse-listeners.js';
import { SseWriter } from '../sse/sse-writer.js';
import { accountOf } from '../auth.js';
import { runRequestParser } from './runs.js';
import { uuidParam } from '../validation.js';

/** A run that ended without an `end` event this long ago had its instance die: write one. */
const MISSING_END_GRACE_MS = 10_000;
/** How long a resume after the end waits for the `end` to reach the archive. */
const END_ARCHIVE_WAIT_MS = 2_000;

/**
 * Decides when an idle listener checks the database for a run that ended without an `end`
 * (its instance died): on idle ticks 2, 4, 8, 16… so 10,000 idle listeners do not each
 * query Postgres on every heartbeat. A failed check is logged by the caller's loop and
 * retried on a later tick.
 */
class MissingEndCheck {
  private idleTicks = 0;
  private nextCheck = 2;

  constructor(private readonly check: () => Promise<boolean>) {}

  /** True when the check wrote a missing `end` (the follower should read again). */
  async due(): Promise<boolean> {
    this.idleTicks += 1;
    if (this.idleTicks < this.nextCheck) return false;
    this.nextCheck *= 2;
    try {
      return await this.check();
    } catch {
      return false; // the database is unavailable: the next check retries, the stream goes on
    }
  }
}

export interface EventsRouterDeps {
  readonly manager: RunManager;
  readonly runs: RunRepository;
  readonly log: EventLog;
  readonly logger: Logger;
  readonly listeners: SseListeners;
  readonly heartbeatMs: number;
  readonly maxBufferBytes: number;
  readonly maxRunTimeoutMs: number;
}

/** `?after=` wins over `Last-Event-ID`; a malformed id is 400. */
function resumePoint(req: Request): EventId | null {
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

  /**
   * Streams a run's events from `after` to its `end`, then closes. `clientLeft` tells whether
   * the client went away before the end (rather than the server ending or cutting it off).
   */
  async function stream(
    res: Response,
    run: { id: string; accountId: string },
    after: EventId | null,
    headers: Record<string, string> = {},
  ): Promise<{ clientLeft: boolean }> {
    const gone = new AbortController();
    let clientLeft = false;
    let cutOff = false;
    const onClose = () => {
      clientLeft = !res.writableFinished && !cutOff;
      gone.abort();
    };
    res.on('close', onClose);
    if (res.destroyed) onClose(); // the client left while the run was looked up
    const untrack = deps.listeners.track();
    const writer = new SseWriter(res);
    const endCheck = new MissingEndCheck(() => writeMissingEnd(run));
    try {
      writer.open(headers);
      await followRun({
        log: deps.log,
        runId: run.id,
        after,
        sink: writer,
        signal: gone.signal,
        idleMs: deps.heartbeatMs,
        maxQueuedBytes: deps.maxBufferBytes,
        onOverflow: () => {
          cutOff = true;
          writer.cutOff();
        },
        onIdle: async () => {
          if (!writer.heartbeat()) gone.abort();
          return endCheck.due();
        },
      });
    } catch (error) {
      deps.logger.warn('event stream stopped', { runId: run.id, error });
    } finally {
      res.off('close', onClose);
      untrack();
      writer.end();
    }
    return { clientLeft };
  }

  /** Writes the `end` of a run whose instance died before writing it; true if it did. */
  async function writeMissingEnd(run: { id: string; accountId: string }): Promise<boolean> {
    const current = await deps.runs.get(run.accountId, run.id);
    if (current === null || !isFinal(current.status) || current.finishedAt === null) return false;
    if (Date.now() - current.finishedAt.getTime() < MISSING_END_GRACE_MS) return false;
    await deps.log.ensureEnd(
      run.id,
      current.error === null ? { status: current.status } : { status: current.status, error: current.error },
      current.finishedAt.getTime(),
    );
    return true;
  }

  /** True when `after` is at or past the run's `end` event (so there is nothing left to send). */
  async function isAfterEnd(runId: string, after: EventId): Promise<boolean> {
    const deadline = Date.now() + END_ARCHIVE_WAIT_MS;
    for (;;) {
      const endId = await deps.log.endId(runId);
      if (endId !== null) return compareEventIds(after, endId) >= 0;
      if (Date.now() > deadline) return false;
      await sleep(50);
    }
  }

  router.get('/v1/runs/:id/events', async (req, res) => {
    const account = accountOf(req);
    const run = await deps.runs.get(account.id, uuidParam(req.params.id));
    if (run === null) throw new NotFoundError();
    const after = resumePoint(req);
    if (after !== null && isFinal(run.status) && (await isAfterEnd(run.id, after))) {
      res.status(204).end();
      return;
    }
    await stream(res, run, after);
  });

  router.post('/v1/runs/stream', async (req, res) => {
    const submitted = runRequest(req);
    const cancelOnDisconnect = req.query.cancel_on_disconnect === 'true';
    const { run } = await deps.manager.submit(submitted);
    const { clientLeft } = await stream(res, run, null, { 'x-run-id': run.id });
    if (clientLeft && cancelOnDisconnect) {
      deps.manager.cancel(submitted.accountId, run.id).catch((error: unknown) => {
        deps.logger.warn('cancel on disconnect failed', { runId: run.id, error });
      });
    }
  });

  return router;
}
