import express, { Router, type Express, type RequestHandler } from 'express';
import type { AgentRegistry } from '../runtime/agent-registry.js';
import type { Config } from '../config/config.js';
import type { TierLimits } from '../config/tier-limits.js';
import type { AccountRepository } from '../db/account-repository.js';
import type { Database } from '../db/database.js';
import type { RunRepository } from '../db/run-repository.js';
import type { Logger } from '../domain/index.js';
import { RunEndRecovery } from '../runtime/run-end-recovery.js';
import type { RunManager } from '../runtime/run-manager.js';
import type { EventLog } from '../streaming/event-log.js';
import type { EventStore } from '../streaming/event-store.js';
import type { Followers } from '../streaming/followers.js';
import { accessLog } from './access-log.js';
import { ApiKeyAuth, tokenAuth } from './auth.js';
import { AuthThrottle } from './auth-throttle.js';
import { cors } from './cors.js';
import { dashboardRouter } from './dashboard/dashboard-router.js';
import { errorHandler, notFound } from './error-handler.js';
import { jsonBody } from './json-body.js';
import { type HttpObserver, rememberErrorCode, rememberMount, requestMetrics } from './request-metrics.js';
import { adminRouter } from './routes/admin.js';
import { agentsRouter } from './routes/agents.js';
import { eventsRouter } from './routes/events.js';
import { openApiRouter } from './routes/openapi.js';
import { type MetricsSource, opsRouter } from './routes/ops.js';
import { runsRouter } from './routes/runs.js';
import { streamTokenAuth, streamTokenRouter } from './routes/stream-tokens.js';
import type { RunStreamDeps } from './sse/run-stream.js';
import { StreamTokens } from './stream-tokens.js';

/** The operator's view of this instance's sizing and live use (`GET /v1/admin/capacity`). */
export interface CapacitySource {
  snapshot(): Promise<Record<string, unknown>>;
}

export interface AppDeps {
  readonly logger: Logger;
  readonly db: Database;
  readonly store: EventStore;
  readonly eventLog: EventLog;
  readonly listeners: Followers;
  readonly accounts: AccountRepository;
  readonly runs: RunRepository;
  readonly manager: RunManager;
  readonly agents: AgentRegistry;
  readonly capacity: CapacitySource;
  /** What GET /metrics answers. */
  readonly metrics: MetricsSource;
  /** Told of every request once its response has ended. */
  readonly http: HttpObserver;
  readonly settings: Pick<
    Config['server'],
    'adminToken' | 'metricsToken' | 'maxBodyBytes' | 'corsOrigins' | 'streamTokenSecret' | 'streamTokenTtlSeconds'
  > &
    Config['sse'] & {
      readonly maxRunTimeoutMs: number;
      readonly queueTimeoutMs: number;
      readonly tierLimits: TierLimits;
    };
}

/**
 * The HTTP app of the contract, without listening (tests mount it). Every /v1 request is
 * authenticated before its body is read: an unauthenticated body is never parsed.
 */
export function createApp(deps: AppDeps): Express {
  const { settings } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  app.use(accessLog(deps.logger));
  const body = jsonBody(settings.maxBodyBytes);
  app.use(requestMetrics(deps.http));

  const open: RequestHandler = (_req, _res, next) => next();
  // One record of failed logins per address, whichever token or key was wrong.
  const throttle = new AuthThrottle();
  // For the API's routes only (/v1 below the admin routes, /openapi.json): never the admin's or the dashboard's.
  const apiCors = cors(settings.corsOrigins);
  app.use(
    openApiRouter({ settings: { maxRunTimeoutMs: settings.maxRunTimeoutMs, tierNames: [...settings.tierLimits.keys()] }, cors: apiCors }),
  );
  app.use(
    opsRouter({
      db: deps.db,
      events: deps.store,
      isDraining: () => deps.manager.isDraining,
      metrics: deps.metrics,
      metricsAuth: settings.metricsToken === undefined ? open : tokenAuth(settings.metricsToken, throttle),
    }),
  );

  // Every event stream (the API's and the dashboard's) shares these.
  const streams: RunStreamDeps = {
    eventLog: deps.eventLog,
    logger: deps.logger,
    followers: deps.listeners,
    ends: new RunEndRecovery({ runs: deps.runs, eventLog: deps.eventLog, logger: deps.logger }),
    heartbeatMs: settings.heartbeatMs,
    maxBufferBytes: settings.maxBufferBytes,
  };

  // The operator's page; like the admin routes it does not exist (404) without ADMIN_TOKEN.
  if (settings.adminToken !== undefined) {
    app.use('/dashboard', dashboardRouter({ ...deps, adminToken: settings.adminToken, throttle, streams }));
  }

  const keyAuth = new ApiKeyAuth(deps.accounts, throttle);
  const admin = Router();
  admin.use(rememberMount, tokenAuth(settings.adminToken ?? null, throttle), body);
  admin.get('/capacity', async (_req, res) => {
    res.json(await deps.capacity.snapshot());
  });
  admin.use(adminRouter({ accounts: deps.accounts, auth: keyAuth, tierLimits: settings.tierLimits }));
  admin.use(notFound);
  app.use('/v1/admin', admin);

  const streamTokens = StreamTokens.fromSettings(settings);
  app.use('/v1', apiCors);
  // A browser's EventSource authenticates with ?token= (it cannot send Authorization); the key check then lets it pass.
  app.get('/v1/runs/:id/events', streamTokenAuth({ tokens: streamTokens, accounts: deps.accounts, throttle }));
  app.use('/v1', keyAuth.middleware, body);
  app.use(agentsRouter(deps.agents));
  app.use(
    eventsRouter({
      manager: deps.manager,
      runs: deps.runs,
      streams,
      logger: deps.logger,
      maxRunTimeoutMs: settings.maxRunTimeoutMs,
    }),
  );
  app.use(
    runsRouter({
      manager: deps.manager,
      runs: deps.runs,
      eventLog: deps.eventLog,
      listeners: deps.listeners,
      maxRunTimeoutMs: settings.maxRunTimeoutMs,
      queueTimeoutMs: settings.queueTimeoutMs,
    }),
  );
  app.use(streamTokenRouter({ tokens: streamTokens, runs: deps.runs }));

  app.use(notFound);
  app.use(rememberErrorCode, errorHandler(deps.logger, settings.maxBodyBytes));
  return app;
}
