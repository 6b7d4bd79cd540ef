import { setTimeout as sleep } from 'node:timers/promises';
import { type RequestHandler, Router } from 'express';
import type { AccountRepository } from '../../db/account-repository.js';
import type { RunRepository } from '../../db/run-repository.js';
import { NotFoundError, UnauthorizedError } from '../../domain/index.js';
import { accountOf } from '../auth.js';
import type { AuthThrottle } from '../auth-throttle.js';
import { type StreamTokens, StreamTokensDisabledError } from '../stream-tokens.js';
import { uuidParam } from '../validation.js';

/** The path of a run's events with its stream token: what an EventSource opens. */
export function tokenEventsUrl(runId: string, token: string): string {
  return `/v1/runs/${runId}/events?token=${encodeURIComponent(token)}`;
}

/** POST /v1/runs/:id/stream-token (API key): a short-lived token that opens the run's event stream. */
export function streamTokenRouter(deps: { tokens: StreamTokens | null; runs: RunRepository }): Router {
  const router = Router();
  router.post('/v1/runs/:id/stream-token', async (req, res) => {
    const account = accountOf(req);
    const runId = uuidParam(req.params.id);
    if (deps.tokens === null) throw new StreamTokensDisabledError();
    const run = await deps.runs.get(account.id, runId);
    if (run === null) throw new NotFoundError();
    const { token, expiresAt } = deps.tokens.issue(account.id, run.id);
    // A credential: no cache keeps it.
    res.setHeader('Cache-Control', 'no-store');
    res.status(201).json({ token, expires_at: expiresAt.toISOString(), events_url: tokenEventsUrl(run.id, token) });
  });
  return router;
}

/**
 * Mounted on `GET /v1/runs/:id/events` before API-key authentication: a request with
 * `?token=` is authenticated by that token alone (its run's, unexpired; the account must
 * still exist) and then passes the API-key check; a bad token is 401, slowed like every 401.
 * Without `?token=` it does nothing. No other route takes a token, and an API key is never
 * accepted in a URL (one sent as `?token=` is simply not a valid token).
 */
export function streamTokenAuth(deps: {
  tokens: StreamTokens | null;
  accounts: AccountRepository;
  throttle: AuthThrottle;
}): RequestHandler {
  return async (req, _res, next) => {
    const token = req.query.token;
    if (token === undefined) {
      next();
      return;
    }
    if (deps.tokens === null) throw new StreamTokensDisabledError();
    // Ids are signed as the database writes them (lowercase); a malformed one matches no token (401, as without one).
    const runId = String(req.params.id).toLowerCase();
    const accountId = typeof token === 'string' ? deps.tokens.verify(token, runId) : null;
    const account = accountId === null ? null : await deps.accounts.get(accountId);
    if (account === null) {
      await sleep(deps.throttle.fail(req.socket.remoteAddress ?? 'unknown'));
      throw new UnauthorizedError(
        'This stream token is not for this run or has expired: ask POST /v1/runs/{id}/stream-token for a new one.',
      );
    }
    req.account = account;
    next();
  };
}
