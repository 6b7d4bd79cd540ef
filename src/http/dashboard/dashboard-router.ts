import { createHash, timingSafeEqual } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import express, { type Request, type RequestHandler, type Response, Router } from 'express';
import { z } from 'zod';
import type { RunRepository } from '../../db/run-repository.js';
import { NotFoundError, UnauthorizedError } from '../../domain/index.js';
import type { AuthThrottle } from '../auth-throttle.js';
import { notFound } from '../error-handler.js';
import { serveRunEvents } from '../routes/events.js';
import type { RunStreamDeps } from '../sse/run-stream.js';
import { uuidParam } from '../validation.js';
import { DASHBOARD_PAGE, loginPage } from './assets/pages.js';
import { DASHBOARD_SCRIPT } from './assets/script.js';
import { DASHBOARD_STYLE } from './assets/style.js';
import { DashboardFeed, type DashboardFeedDeps } from './dashboard-feed.js';
import { DashboardSessions, SESSION_TTL_SECONDS, sessionCookie, sessionOf } from './dashboard-sessions.js';
import { sameOriginOnly } from './same-origin.js';

/**
 * Every dashboard stream of run events counts as a follower of this one pseudo-account, so
 * all dashboards together hold at most SSE_MAX_LISTENERS_PER_ACCOUNT of them. Not a UUID: it
 * never meets a real account.
 */
export const DASHBOARD_FOLLOWERS = 'dashboard';

/** The page may load only what the process itself serves; nothing inline, no frames. */
const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
  "form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
const WRONG_TOKEN = 'That is not the admin token.';
/** A login body holds one token: anything longer is refused before it is parsed. */
const LOGIN_BODY_BYTES = 4096;
const loginFields = z.object({ token: z.string().min(1).max(1024) });

export interface DashboardDeps {
  /** ADMIN_TOKEN: the dashboard exists only when it is set. */
  readonly adminToken: string;
  readonly throttle: AuthThrottle;
  readonly capacity: DashboardFeedDeps['capacity'];
  readonly runs: RunRepository;
  /** What every event stream of the app shares (SSE_HEARTBEAT_MS, SSE_MAX_BUFFER_BYTES, …). */
  readonly streams: RunStreamDeps;
}

const digest = (text: string) => createHash('sha256').update(text).digest();
const addressOf = (req: Request) => req.socket.remoteAddress ?? 'unknown';
/** Served over HTTPS (directly, or a proxy says so: a client lying about it only loses its cookie). */
const isHttps = (req: Request) =>
  req.secure ||
  String(req.headers['x-forwarded-proto'] ?? '')
    .split(',')[0]
    ?.trim() === 'https';
const isForm = (req: Request) => req.is('application/x-www-form-urlencoded') !== false;

function sendHtml(res: Response, html: string, status = 200): void {
  res.status(status).type('text/html; charset=utf-8').send(html);
}

/** Headers of every dashboard answer: never cached, never framed, no referrer, the CSP above. */
const securityHeaders: RequestHandler = (_req, res, next) => {
  res.setHeader('cache-control', 'no-store');
  res.setHeader('content-security-policy', CONTENT_SECURITY_POLICY);
  res.setHeader('x-content-type-options', 'nosniff');
  res.setHeader('x-frame-options', 'DENY');
  res.setHeader('referrer-policy', 'no-referrer');
  next();
};

/**
 * The login and logout: the admin token is taken once, from a POST body (form or JSON), and
 * traded for a session cookie; wrong tokens are slowed like every 401.
 */
function sessionRoutes(router: Router, deps: DashboardDeps, sessions: DashboardSessions): void {
  const expected = digest(deps.adminToken);
  const bodies = [
    express.urlencoded({ extended: false, limit: LOGIN_BODY_BYTES, parameterLimit: 10 }),
    express.json({ limit: LOGIN_BODY_BYTES }),
  ];

  router.post('/login', sameOriginOnly, ...bodies, async (req, res) => {
    const fields = loginFields.safeParse(req.body);
    if (!fields.success || !timingSafeEqual(digest(fields.data.token), expected)) {
      await sleep(deps.throttle.fail(addressOf(req)));
      if (!isForm(req)) throw new UnauthorizedError(WRONG_TOKEN);
      sendHtml(res, loginPage(WRONG_TOKEN), 401);
      return;
    }
    const session = await sessions.issue();
    res.setHeader('set-cookie', sessionCookie(session.value, SESSION_TTL_SECONDS, isHttps(req)));
    if (isForm(req)) res.redirect(303, '/dashboard');
    else res.json({ expires_at: session.expiresAt.toISOString() });
  });

  router.post('/logout', sameOriginOnly, async (req, res) => {
    const value = sessionOf(req.headers.cookie);
    if (value !== null) await sessions.revoke(value);
    res.setHeader('set-cookie', sessionCookie('', 0, isHttps(req)));
    if (isForm(req)) res.redirect(303, '/dashboard');
    else res.status(204).end();
  });
}

/**
 * The operator's dashboard, mounted at /dashboard: the login form (or the page, with a live
 * session), its script and style, the shared snapshot the page polls, and any run's events.
 */
export function dashboardRouter(deps: DashboardDeps): Router {
  const router = Router();
  const sessions = new DashboardSessions(deps.adminToken);
  const feed = new DashboardFeed({ capacity: deps.capacity, runs: deps.runs });
  const hasSession = async (req: Request) => {
    const value = sessionOf(req.headers.cookie);
    return value !== null && (await sessions.verify(value));
  };
  const requireSession: RequestHandler = async (req, _res, next) => {
    if (!(await hasSession(req))) {
      await sleep(deps.throttle.fail(addressOf(req)));
      throw new UnauthorizedError('Log in at /dashboard: this session is missing or has expired.');
    }
    next();
  };

  router.use(securityHeaders);
  router.get('/', async (req, res) => {
    sendHtml(res, (await hasSession(req)) ? DASHBOARD_PAGE : loginPage(null));
  });
  router.get('/app.js', (_req, res) => {
    res.type('text/javascript; charset=utf-8').send(DASHBOARD_SCRIPT);
  });
  router.get('/app.css', (_req, res) => {
    res.type('text/css; charset=utf-8').send(DASHBOARD_STYLE);
  });
  sessionRoutes(router, deps, sessions);

  router.get('/api/snapshot', requireSession, async (_req, res) => {
    res.type('application/json').send(await feed.body());
  });

  // Any account's run: the dashboard is the admin's view.
  router.get('/api/runs/:id/events', requireSession, async (req, res) => {
    const run = await deps.runs.getAny(uuidParam(req.params.id));
    if (run === null) throw new NotFoundError();
    await serveRunEvents(deps.streams, req, res, run, DASHBOARD_FOLLOWERS);
  });

  router.use(notFound);
  return router;
}
