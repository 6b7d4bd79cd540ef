import type { ErrorRequestHandler, RequestHandler } from 'express';
import { AppError, InvalidJsonError, InvalidRequestError, type Logger, NotFoundError, PayloadTooLargeError } from '../domain/index.js';

/** A request body with U+0000 in it (its `verify` hook throws this). */
export class NulCharacterError extends InvalidRequestError {
  constructor() {
    super('Strings in the body may not contain the NUL character (\\u0000).', 'body');
  }
}

/** body-parser marks its errors with `type`; map them to the contract's codes. */
function fromBodyParser(error: unknown, maxBodyBytes: number): AppError | undefined {
  const type = (error as { type?: unknown } | null)?.type;
  switch (type) {
    case 'entity.verify.failed':
      return new NulCharacterError();
    case 'entity.parse.failed':
      return new InvalidJsonError();
    case 'entity.too.large':
      return new PayloadTooLargeError(maxBodyBytes);
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new InvalidRequestError('The request body must be UTF-8 JSON.');
    case 'request.aborted':
    case 'request.size.invalid':
      return new InvalidRequestError('The request body ended before its declared length.');
    default:
      return undefined;
  }
}

export const notFound: RequestHandler = (_req, _res, next) => next(new NotFoundError('No route matches this method and path.'));

/** The one place errors become responses: `{"error": {"code", "message", ...details}}`. */
export function errorHandler(logger: Logger, maxBodyBytes: number): ErrorRequestHandler {
  return (error: unknown, req, res, _next) => {
    const known = error instanceof AppError ? error : fromBodyParser(error, maxBodyBytes);
    const appError = known ?? new AppError('internal', 500, 'Something went wrong on our side; it was logged.');
    if (known === undefined) logger.error('request failed', { method: req.method, path: req.path, error });
    else if (appError.status >= 500) logger.warn('request refused', { method: req.method, path: req.path, code: appError.code });
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (typeof appError.details.retry_after_s === 'number') {
      res.setHeader('Retry-After', String(appError.details.retry_after_s));
    }
    if (appError.code === 'dependency_unavailable' || appError.code === 'draining') res.setHeader('Retry-After', '1');
    res.status(appError.status).json({ error: { code: appError.code, message: appError.message, ...appError.details } });
  };
}
