/**
 * The OpenAPI document against the app: every route the app mounts is documented and every
 * documented operation is mounted (the router stack is walked), and the table of error codes
 * holds the statuses the typed errors answer with.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/config.js';
import {
  AccountConcurrencyLimitError,
  type AppError,
  CapacityExhaustedError,
  DependencyUnavailableError,
  DrainingError,
  IdempotencyKeyReusedError,
  InvalidJsonError,
  InvalidRequestError,
  ListenerLimitError,
  MetricsUnavailableError,
  NotFoundError,
  PayloadTooLargeError,
  SessionConcurrencyLimitError,
  UnauthorizedError,
  UnknownAgentError,
  UnsupportedMediaTypeError,
} from '../../src/domain/index.js';
import { type AppDeps, createApp } from '../../src/http/app.js';
import { API_ERRORS } from '../../src/http/openapi/api-errors.js';
import { openApiDocument } from '../../src/http/openapi/openapi-document.js';
import { StreamTokensDisabledError } from '../../src/http/stream-tokens.js';
import { createLogger } from '../../src/observability/logger.js';
import { mountedRoutes } from '../helpers/routes.js';

/** The operator page's own assets and cookie-session endpoints: served for the page, not part of the API. */
const PAGE_ROUTES = new Set([
  'get /dashboard/app.js',
  'get /dashboard/app.css',
  'post /dashboard/login',
  'post /dashboard/logout',
  'get /dashboard/api/snapshot',
  'get /dashboard/api/runs/{id}/events',
]);

/** The app as start-up builds it (ADMIN_TOKEN set, so the admin routes and the dashboard are mounted); nothing is called. */
function appWithEveryRoute() {
  const config = loadConfig({ ADMIN_TOKEN: 'an-admin-token-of-some-length' });
  const unused = {} as never;
  const deps: AppDeps = {
    logger: createLogger('error'),
    db: unused,
    store: unused,
    eventLog: unused,
    listeners: unused,
    accounts: unused,
    runs: unused,
    manager: unused,
    agents: { describe: () => [] } as never,
    capacity: unused,
    metrics: unused,
    http: unused,
    settings: {
      ...config.server,
      ...config.sse,
      maxRunTimeoutMs: config.runs.maxTimeoutMs,
      queueTimeoutMs: config.runs.queueTimeoutMs,
      tierLimits: config.runs.tierLimits,
    },
  };
  return createApp(deps);
}

const documented = () => openApiDocument({ maxRunTimeoutMs: 3_600_000, tierNames: ['free', 'pro'] });

describe('the OpenAPI document', () => {
  it('documents every mounted route, and only mounted routes', () => {
    const mounted = mountedRoutes(appWithEveryRoute())
      .map((route) => `${route.method} ${route.path}`)
      .filter((route) => !PAGE_ROUTES.has(route));
    const paths = documented().paths ?? {};
    const operations = Object.entries(paths).flatMap(([path, item]) =>
      Object.keys(item ?? {})
        .filter((key) => ['get', 'post', 'put', 'patch', 'delete'].includes(key))
        .map((method) => `${method} ${path}`),
    );
    assert.deepEqual(
      mounted.filter((route) => !operations.includes(route)),
      [],
      'mounted but not in the route table of src/http/openapi/api-operations.ts',
    );
    assert.deepEqual(
      operations.filter((route) => !mounted.includes(route)),
      [],
      'documented but not mounted',
    );
    assert.ok(mounted.includes('post /v1/runs/{id}/stream-token'));
    assert.ok(mounted.includes('get /v1/admin/accounts/{id}'), 'routers mounted under a path are walked');
  });

  it('is OpenAPI 3.1 with unique operation ids, security schemes and each route’s error codes', () => {
    const document = documented();
    assert.equal(document.openapi, '3.1.0');
    const operations = Object.values(document.paths ?? {}).flatMap((item) => Object.values(item ?? {}) as Array<Record<string, any>>);
    const ids = operations.map((operation) => operation.operationId);
    assert.equal(new Set(ids).size, ids.length);
    assert.deepEqual(Object.keys(document.components?.securitySchemes ?? {}).sort(), [
      'adminToken',
      'apiKey',
      'metricsToken',
      'streamToken',
    ]);
    const createRun = document.paths?.['/v1/runs']?.post as Record<string, any>;
    assert.deepEqual(createRun.security, [{ apiKey: [] }]);
    const codes = (status: number) => createRun.responses[status].content['application/json'].schema.properties.error.properties.code.enum;
    assert.deepEqual(codes(429), ['account_concurrency_limit', 'session_concurrency_limit']);
    assert.deepEqual(codes(503).sort(), ['capacity_exhausted', 'dependency_unavailable', 'draining']);
    assert.deepEqual(document.paths?.['/healthz']?.get?.security, []);
    assert.deepEqual(document.paths?.['/v1/runs/{id}/events']?.get?.security, [{ apiKey: [] }, { streamToken: [] }]);
    const stream = document.paths?.['/v1/runs/{id}/events']?.get?.responses?.['200'] as Record<string, any>;
    assert.match(stream.content['text/event-stream'].schema.description, /event: <type>/);
  });

  it('takes its limits from the settings the routes are built with', () => {
    const document = openApiDocument({ maxRunTimeoutMs: 1234, tierNames: ['gold'] });
    const schemas = document.components?.schemas as Record<string, any>;
    const timeout = schemas.RunRequest.properties.timeout_ms.anyOf[0];
    assert.equal(timeout.maximum, 1234);
    assert.equal(schemas.RunRequest.additionalProperties, false, 'requests are strict');
    const tier = (document.paths?.['/v1/admin/accounts']?.post?.requestBody as any).content['application/json'].schema.properties.tier;
    assert.deepEqual(tier.enum, ['gold']);
    assert.equal(schemas.Run.additionalProperties, undefined, 'answers may gain properties');
  });

  it('holds each error code to the status its typed error answers with', () => {
    const errors: AppError[] = [
      new InvalidRequestError('x'),
      new InvalidJsonError(),
      new UnknownAgentError('x'),
      new UnauthorizedError(),
      new NotFoundError(),
      new PayloadTooLargeError(1),
      new UnsupportedMediaTypeError('x'),
      new IdempotencyKeyReusedError(),
      new AccountConcurrencyLimitError(1, 1),
      new SessionConcurrencyLimitError(1, 1),
      new ListenerLimitError(1, 1),
      new StreamTokensDisabledError(),
      new CapacityExhaustedError(1),
      new DrainingError(),
      new DependencyUnavailableError('database'),
      new MetricsUnavailableError('x'),
    ];
    for (const error of errors) {
      const entry = (API_ERRORS as Record<string, { status: number; details: readonly string[] }>)[error.code];
      assert.ok(entry, `${error.code} is in API_ERRORS`);
      assert.equal(entry.status, error.status, error.code);
      for (const detail of Object.keys(error.details)) assert.ok(entry.details.includes(detail), `${error.code} documents ${detail}`);
    }
  });
});
