import type { Request, RequestHandler } from 'express';
import { AppError } from '../../domain/index.js';

/** A state-changing request a browser sent from another site (cross-site request forgery). */
export class CrossSiteRequestError extends AppError {
  constructor() {
    super('forbidden', 403, 'This request must come from the dashboard page itself.');
  }
}

/**
 * Whether a browser says the request came from a page of this origin: `Sec-Fetch-Site` when
 * sent (same-origin, or none for one the user typed), else `Origin` naming this host. A
 * request with neither comes from no browser (curl, scripts), which holds no ambient cookie
 * to abuse.
 */
export function isSameOrigin(req: Request): boolean {
  const site = req.headers['sec-fetch-site'];
  if (typeof site === 'string') return site === 'same-origin' || site === 'none';
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false; // "null" or garbage: an opaque origin is another site
  }
}

/** Refuses (403) a cross-site POST to the dashboard; with SameSite=Strict cookies, enough against CSRF. */
export const sameOriginOnly: RequestHandler = (req, _res, next) => {
  if (!isSameOrigin(req)) throw new CrossSiteRequestError();
  next();
};
