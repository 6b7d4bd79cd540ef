import type { ErrorRequestHandler, Request, RequestHandler, Response } from 'express';
import { AppError } from '../domain/index.js';

/** Counts HTTP requests (metrics); kept narrow so the HTTP layer knows nothing of prom-client. */
export interface HttpObserver {
  /**
   * A response ended (or its client left): the method (`other` for an unusual one), the route
   * pattern (`/v1/runs/:id`, `(no route)`), the status, the error code when the error handler
   * answered an AppError (else null), and the time since the request arrived, in ms.
   */
  requestEnded(method: string, route: string, status: number, errorCode: string | null, durationMs: number): void;
}

const METHODS = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS']);

/** Where the route pattern's mount point and the answered error's code are kept on the response. */
const MOUNT = 'metricsMount';
const ERROR_CODE = 'metricsErrorCode';

/** Times every request and reports it to `observer` once its response has ended. Mount it first. */
export function requestMetrics(observer: HttpObserver): RequestHandler {
  return (req, res, next) => {
    const startedAt = performance.now();
    res.once('close', () => {
      const errorCode: unknown = res.locals[ERROR_CODE];
      observer.requestEnded(
        METHODS.has(req.method) ? req.method : 'other',
        routeOf(req, res),
        res.statusCode,
        typeof errorCode === 'string' ? errorCode : null,
        performance.now() - startedAt,
      );
    });
    next();
  };
}

/**
 * Remembers the mount path of a router mounted under a prefix (`/v1/admin`), so that its
 * routes are reported with it even when an error leaves the router before the response ends.
 */
export const rememberMount: RequestHandler = (req, res, next) => {
  res.locals[MOUNT] = req.baseUrl;
  next();
};

/** Notes the code of an AppError for requestMetrics, then passes it on to the error handler. Mount it just before. */
export const rememberErrorCode: ErrorRequestHandler = (error: unknown, _req, res, next) => {
  if (error instanceof AppError) res.locals[ERROR_CODE] = error.code;
  next(error);
};

/** The matched route's pattern with its mount path, never the path as sent (bounded label values). */
function routeOf(req: Request, res: Response): string {
  const path: unknown = req.route?.path;
  if (typeof path !== 'string') return '(no route)';
  const mount: unknown = res.locals[MOUNT];
  return typeof mount === 'string' ? `${mount}${path}` : path;
}
