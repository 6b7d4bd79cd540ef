import type { ErrorRequestHandler, RequestHandler } from 'express';
import {
  AppError,
  InvalidJsonError,
  InvalidRequestError,
  type Logger,
  NotFoundError,
  PayloadTooLargeError,
  UnsupportedMediaTypeError,
} from '../domain/index.js';
import { matchedRoute } from './access-log.js';
import { carriesRetryAfter, DEFAULT_RETRY_AFTER_S } from './openapi/api-errors.js';

/**
 * body-parser marks its errors with `type` (and attaches the raw body, which must never reach
 * a log line); the router marks a path it cannot percent-decode with a URIError of status 400.
 * Map them to the contract's codes.
 */
function fromParsers(error: unknown, maxBodyBytes: number): AppError | undefined {
  if (error instanceof URIError && (error as { status?: unknown }).status === 400) {
    return new NotFoundError('No route matches this method and path.');
  }
  const { type, status } = (error ?? {}) as { type?: unknown; status?: unknown };
  switch (type) {
    case 'entity.parse.failed':
    case 'entity.verify.failed':
      return new InvalidJsonError();
    case 'entity.too.large':
      return new PayloadTooLargeError(maxBodyBytes);
    case 'encoding.unsupported':
      return new UnsupportedMediaTypeError(
        'Request bodies must not be compressed: send them without Content-Encoding (or with "identity").',
      );
    case 'charset.unsupported':
      return new InvalidRequestError('The request body must be UTF-8 JSON.');
    case 'request.aborted':
    case 'request.size.invalid':
      return new InvalidRequestError('The request body ended before its declared length.');
    default:
      // Any other refusal of a body (body-parser's 4xx), without its body in a log line.
      if (typeof type === 'string' && typeof status === 'number' && status >= 400 && status < 500) {
        return new InvalidRequestError('The request body could not be read.');
      }
      return undefined;
  }
}

export const notFound: RequestHandler = (_req, _res, next) => next(new NotFoundError('No route matches this method and path.'));

/** The one place errors become responses: `{"error": {"code", "message", ...details}}`. */
export function errorHandler(logger: Logger, maxBodyBytes: number): ErrorRequestHandler {
  return (error: unknown, req, res, _next) => {
    const known = error instanceof AppError ? error : fromParsers(error, maxBodyBytes);
    const appError = known ?? new AppError('internal', 500, 'Something went wrong on our side; it was logged.');
    if (known === undefined) logger.error('request failed', { method: req.method, route: matchedRoute(res), error });
    else if (appError.status >= 500) {
      const cause = appError.cause === undefined ? {} : { cause: appError.cause };
      logger.warn('request refused', { method: req.method, route: matchedRoute(res), code: appError.code, ...cause });
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const details = carriesRetryAfter(appError.status) ? { ...appError.details, retry_after_s: retryAfterS(appError) } : appError.details;
    if (typeof details.retry_after_s === 'number') res.setHeader('Retry-After', String(details.retry_after_s));
    res.status(appError.status).json({ error: { code: appError.code, message: appError.message, ...details } });
  };
}

/** Seconds a refused client should wait: the error's own figure, else DEFAULT_RETRY_AFTER_S. */
function retryAfterS(error: AppError): number {
  const own = error.details.retry_after_s;
  return typeof own === 'number' && own > 0 ? own : DEFAULT_RETRY_AFTER_S;
}
