import { Router, type RequestHandler } from 'express';
import type { Database } from '../../db/database.js';
import type { EventStore } from '../../streaming/event-store.js';
import { DEFAULT_RETRY_AFTER_S } from '../openapi/api-errors.js';
import { Readiness } from '../readiness.js';

/** The text of /metrics: this process's registry, or in a cluster worker the sum over every worker. */
export interface MetricsSource {
  readonly contentType: string;
  /** Rejects when the figures cannot be gathered (the answer is then 503). */
  metrics(): Promise<string>;
}

/** /healthz, /readyz and /metrics (behind METRICS_TOKEN when set). */
export function opsRouter(deps: {
  db: Database;
  events: EventStore;
  isDraining: () => boolean;
  metrics: MetricsSource;
  metricsAuth: RequestHandler;
}): Router {
  const router = Router();
  const readiness = new Readiness({ database: () => deps.db.query('SELECT 1'), 'event store': () => deps.events.ping() }, deps.isDraining);

  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  router.get('/readyz', async (_req, res) => {
    const { ready, failures, degraded } = await readiness.report();
    const shown = degraded.length === 0 ? {} : { degraded };
    if (ready) res.json({ status: 'ready', ...shown });
    else
      res
        .status(503)
        .set('Retry-After', String(DEFAULT_RETRY_AFTER_S))
        .json({ status: 'not_ready', failures, retry_after_s: DEFAULT_RETRY_AFTER_S, ...shown });
  });

  router.get('/metrics', deps.metricsAuth, async (_req, res) => {
    res.type(deps.metrics.contentType).send(await deps.metrics.metrics());
  });

  return router;
}
