import type { RequestHandler } from 'express';
import type { CorsOrigins } from '../config/cors-origins.js';

/** What a page may send: the bearer key, JSON, the run's idempotency and resume headers, its own request id. */
export const CORS_ALLOWED_HEADERS = ['Authorization', 'Content-Type', 'Idempotency-Key', 'Last-Event-ID', 'X-Request-Id'];
/** What a page may read beyond the safelisted response headers. */
export const CORS_EXPOSED_HEADERS = ['X-Run-Id', 'X-Request-Id', 'Retry-After', 'Location'];
/** The methods of the routes behind CORS (/v1 without /v1/admin, /openapi.json). */
const ALLOWED_METHODS = 'GET, POST';
/** How long a browser may reuse a preflight's answer (Chromium caps it at 2 h). */
const PREFLIGHT_MAX_AGE_SECONDS = 600;

/**
 * CORS for the API routes it is mounted on (CORS_ORIGINS). With no origins it does nothing:
 * no CORS header at all. An allowed origin's preflight (OPTIONS with
 * Access-Control-Request-Method) is answered 204 here, before authentication (a browser
 * never sends credentials with one); its other requests get Access-Control-Allow-Origin and
 * the exposed headers on every answer, errors included. Another origin gets nothing, so its
 * browser refuses to hand the answer to the page. Never Access-Control-Allow-Credentials: the
 * API's credentials are bearer keys and stream tokens a page sends itself, never cookies.
 */
export function cors(origins: CorsOrigins): RequestHandler {
  if (origins !== '*' && origins.length === 0) return (_req, _res, next) => next();
  const anyOrigin = origins === '*';
  const allowed = new Set(anyOrigin ? [] : origins);
  return (req, res, next) => {
    // The answer depends on Origin: a shared cache must not give one origin's answer to another.
    if (!anyOrigin) res.vary('Origin');
    const origin = req.headers.origin;
    if (origin === undefined || !(anyOrigin || allowed.has(origin))) {
      next();
      return;
    }
    res.setHeader('Access-Control-Allow-Origin', anyOrigin ? '*' : origin);
    if (req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined) {
      res.setHeader('Access-Control-Allow-Methods', ALLOWED_METHODS);
      res.setHeader('Access-Control-Allow-Headers', CORS_ALLOWED_HEADERS.join(', '));
      res.setHeader('Access-Control-Max-Age', String(PREFLIGHT_MAX_AGE_SECONDS));
      res.status(204).end();
      return;
    }
    res.setHeader('Access-Control-Expose-Headers', CORS_EXPOSED_HEADERS.join(', '));
    next();
  };
}
