import { Counter, Histogram, type Registry } from 'prom-client';
import { boundChildren } from './collected-metrics.js';

const HTTP_DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120];

/** What the HTTP layer reports of each request (its HttpObserver, matched by shape). */
export interface HttpMetrics {
  requestEnded(method: string, route: string, status: number, errorCode: string | null, durationMs: number): void;
}

/**
 * Counts HTTP requests by method, route pattern and status class (`2xx`…) with their
 * durations (an event stream lasts as long as its run), and requests refused with 429 or 503
 * by route and error code.
 */
export function httpMetrics(registry: Registry): HttpMetrics {
  const labelNames = ['method', 'route', 'status_class'] as const;
  const requests = new Counter({
    name: 'agentd_http_requests_total',
    help: 'HTTP requests answered, by method, route pattern and status class.',
    labelNames,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'agentd_http_request_duration_seconds',
    help: 'Time from a request to the end of its response (for an event stream, the stream), by method, route pattern and status class.',
    labelNames,
    buckets: HTTP_DURATION_BUCKETS,
    registers: [registry],
  });
  const refused = new Counter({
    name: 'agentd_http_refused_total',
    help: 'Requests refused with 429 or 503, by route pattern and error code: runs (/v1/runs, /v1/runs/stream), listeners, outages.',
    labelNames: ['route', 'code'],
    registers: [registry],
  });
  const requestsOf = boundChildren((method, route, statusClass) => requests.labels({ method, route, status_class: statusClass }));
  const durationOf = boundChildren((method, route, statusClass) => duration.labels({ method, route, status_class: statusClass }));
  const refusedOf = boundChildren((route, code) => refused.labels({ route, code }));
  return {
    requestEnded(method, route, status, errorCode, durationMs) {
      const statusClass = `${Math.floor(status / 100)}xx`;
      requestsOf(method, route, statusClass).inc();
      durationOf(method, route, statusClass).observe(durationMs / 1000);
      if ((status === 429 || status === 503) && errorCode !== null) refusedOf(route, errorCode).inc();
    },
  };
}
