import { Router, type RequestHandler } from 'express';
import type { Registry } from 'prom-client';
import { withDeadline } from '../../concurrency/deadline.js';
import type { Database } from '../../db/database.js';
import type { EventStore } from '../../streaming/event-store.js';

const PROBE_TIMEOUT_MS = 2_000;

async function probe(name: string, check: () => Promise<unknown>): Promise<string | null> {
  try {
    await withDeadline(check(), PROBE_TIMEOUT_MS, name);
    return null;
  } catch (error) {
    return `${name}: ${error instanceof Error ? error.message : String(error)}`;
  }
}

/** /healthz, /readyz and /metrics (behind METRICS_TOKEN when set). */
export function opsRouter(deps: {
  db: Database;
  events: EventStore;
  isDraining: () => boolean;
  registry: Registry;
  metricsAuth: RequestHandler;
}): Router {
  const router = Router();

  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  router.get('/readyz', async (_req, res) => {
    const failures = (
      await Promise.all([probe('database', () => deps.db.query('SELECT 1')), probe('event store', () => deps.events.ping())])
    ).filter((f): f is string => f !== null);
    if (deps.isDraining()) failures.push('draining: the instance is shutting down');
    if (failures.length === 0) res.json({ status: 'ready' });
    else res.status(503).json({ status: 'not_ready', failures });
  });

  router.get('/metrics', deps.metricsAuth, async (_req, res) => {
    res.type(deps.registry.contentType).send(await deps.registry.metrics());
  });

  return router;
}
