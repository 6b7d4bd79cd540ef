import { randomUUID } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import type { Logger } from '../domain/index.js';

/** An `X-Request-Id` a client or proxy sent is kept when it is one token of these characters; else one is made. */
const REQUEST_ID = /^[A-Za-z0-9._:+=/-]{1,128}$/;

/** Probes and scrapes: logged at debug (unless they fail with 5xx), so they do not drown the rest. */
const QUIET_ROUTES = new Set(['/healthz', '/readyz', '/metrics']);

/** Where the pattern of the route that answered is kept (`res.locals`). */
const ROUTE = 'routePattern';

/** What a line shows for a request no route matched (refused before routing, or 404): never its path. */
export const NO_ROUTE = '(no route)';

/** The pattern of the route that answered (`/v1/runs/:id`), never the path as sent: log lines carry no request input. */
export function matchedRoute(res: Response): string {
  const pattern: unknown = res.locals[ROUTE];
  return typeof pattern === 'string' ? pattern : NO_ROUTE;
}

/**
 * Keeps the full pattern of each route the router matches. `req.route.path` is relative to the
 * router it is in, and `req.baseUrl` is restored as the request leaves that router (before an
 * error handler or the end of the response), so the two are joined when the router sets it.
 */
function keepRoutePattern(req: Request, res: Response): void {
  let route: unknown;
  Object.defineProperty(req, 'route', {
    configurable: true,
    enumerable: true,
    get: () => route,
    set: (value: unknown) => {
      route = value;
      const path = (value as { path?: unknown } | undefined)?.path;
      if (typeof path === 'string') res.locals[ROUTE] = `${req.baseUrl}${path}`;
    },
  });
}

function roundMs(ms: number): number {
  return Math.round(ms * 10) / 10;
}

/**
 * The first middleware: gives the request its id (`X-Request-Id` when sane, else a new UUID),
 * returns it on the response, runs the rest of the request with `request_id` in the log
 * context, and writes one `request` line when the response is over: method, route pattern,
 * status, duration, the account; a stream (SSE) logs then too, with its whole duration.
 */
export function accessLog(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const startedAt = performance.now();
    const given = req.headers['x-request-id'];
    const requestId = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    res.setHeader('X-Request-Id', requestId);
    keepRoutePattern(req, res);
    res.once('close', () => {
      const route = matchedRoute(res);
      const status = res.headersSent ? res.statusCode : null;
      const stream = String(res.getHeader('content-type') ?? '').startsWith('text/event-stream');
      const line = {
        request_id: requestId,
        method: req.method,
        route,
        status,
        duration_ms: roundMs(performance.now() - startedAt),
        ...(req.account === undefined ? {} : { account_id: req.account.id }),
        ...(stream ? { stream: true } : {}),
        // The connection closed before the whole response was sent (a client that left, a stream cut off).
        ...(res.writableFinished ? {} : { client_left: true }),
      };
      if (QUIET_ROUTES.has(route) && (status ?? 500) < 500) logger.debug('request', line);
      else logger.info('request', line);
    });
    logger.withContext({ request_id: requestId }, next);
  };
}
