/**
 * GET /openapi.json against the server that publishes it (embedded default: PGlite, the
 * in-process event store): each route's answers, a success and at least one error, validate
 * against the document (Ajv, JSON Schema 2020-12), with no property the document leaves out.
 */
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { ADMIN_TOKEN, startAgentd, type TestAgentd } from '../helpers/agentd.js';
import { request, type RequestOptions } from '../helpers/http.js';
import { OpenApiChecker } from '../helpers/openapi.js';
import { rawRequest } from '../helpers/raw-http.js';
import { unique } from '../helpers/ids.js';

const METRICS_TOKEN = 'test-metrics-token-0123456789';
const UNKNOWN = '00000000-0000-4000-8000-000000000000';
const LONG = { agent: 'simulate', input: { events: 100_000, interval_ms: 50 } };
/**
 * Public routes no client can make fail: only the server failing (or, for /readyz, a
 * dependency), or for /dashboard an unset ADMIN_TOKEN (404, like the admin routes).
 */
const NO_CLIENT_ERROR = new Set(['get /healthz', 'get /readyz', 'get /openapi.json', 'get /dashboard']);

describe('OpenAPI document on the embedded default', () => {
  let agentd: TestAgentd;
  let spec: OpenApiChecker;
  let pro: { id: string; apiKey: string; prefix: string };
  let free: { id: string; apiKey: string; prefix: string };
  /** Long runs, cancelled at the end. */
  const long: Array<{ apiKey: string; id: string }> = [];

  /** Sends a request and checks its answer against the operation `path` (a template) of the document. */
  async function call(method: string, path: string, url: string, options: RequestOptions = {}) {
    const res = await request(agentd.url, method, url, options);
    spec.check(method, path, res);
    assert.deepEqual(
      [...res.headers.keys()].filter((name) => name.startsWith('access-control-')),
      [],
      'no CORS header without CORS_ORIGINS',
    );
    return res;
  }
  const asPro = (method: string, path: string, url: string, options: RequestOptions = {}) =>
    call(method, path, url, { token: pro.apiKey, ...options });

  before(async () => {
    agentd = await startAgentd('pglite', { MAX_BODY_BYTES: '4096', METRICS_TOKEN, TIER_LIMITS: 'free:1,pro:5' });
    const res = await request(agentd.url, 'GET', '/openapi.json');
    assert.equal(res.status, 200);
    spec = new OpenApiChecker(res.body);
    spec.check('GET', '/openapi.json', res);
    pro = await agentd.createAccount('pro', unique('pro'));
    free = await agentd.createAccount('free', unique('free'));
  });
  after(async () => {
    for (const run of long) await agentd.as(run.apiKey, 'POST', `/v1/runs/${run.id}/cancel`);
    await agentd.waitForIdle();
    await agentd.close();
  });

  it('operations', async () => {
    await call('GET', '/healthz', '/healthz');
    await call('GET', '/readyz', '/readyz');
    await call('GET', '/metrics', '/metrics', { token: METRICS_TOKEN });
    await call('GET', '/metrics', '/metrics');
    await call('GET', '/dashboard', '/dashboard');
    await call('GET', '/v1/admin/capacity', '/v1/admin/capacity', { token: ADMIN_TOKEN });
    await call('GET', '/v1/admin/capacity', '/v1/admin/capacity', { token: 'not-the-admin-token' });
  });

  it('accounts and keys', async () => {
    const admin = { token: ADMIN_TOKEN };
    const created = await call('POST', '/v1/admin/accounts', '/v1/admin/accounts', { ...admin, body: { name: unique('a'), tier: 'free' } });
    assert.equal(created.status, 201);
    const id: string = created.body.id;
    await call('POST', '/v1/admin/accounts', '/v1/admin/accounts', { ...admin, body: { name: 'x', tier: 'platinum' } });
    await call('POST', '/v1/admin/accounts', '/v1/admin/accounts', {
      ...admin,
      rawBody: '{"name": ',
      headers: { 'content-type': 'application/json' },
    });
    await call('POST', '/v1/admin/accounts', '/v1/admin/accounts', { ...admin, body: { name: 'x'.repeat(5000), tier: 'free' } });
    const gzipped = await rawRequest(agentd.url, {
      method: 'POST',
      path: '/v1/admin/accounts',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: gzipSync('{"name": "x", "tier": "free"}'),
    });
    spec.check('POST', '/v1/admin/accounts', gzipped);
    assert.equal(gzipped.status, 415);

    await call('GET', '/v1/admin/accounts/{id}', `/v1/admin/accounts/${id}`, admin);
    await call('GET', '/v1/admin/accounts/{id}', `/v1/admin/accounts/${UNKNOWN}`, admin);
    await call('PATCH', '/v1/admin/accounts/{id}', `/v1/admin/accounts/${id}`, { ...admin, body: { tier: 'pro' } });
    await call('PATCH', '/v1/admin/accounts/{id}', `/v1/admin/accounts/${id}`, { ...admin, body: { tier: 'gold' } });
    await call('PATCH', '/v1/admin/accounts/{id}', `/v1/admin/accounts/${UNKNOWN}`, { ...admin, body: { tier: 'pro' } });
    const key = await call('POST', '/v1/admin/accounts/{id}/keys', `/v1/admin/accounts/${id}/keys`, admin);
    await call('POST', '/v1/admin/accounts/{id}/keys', `/v1/admin/accounts/${UNKNOWN}/keys`, admin);
    await call('DELETE', '/v1/admin/keys/{prefix}', `/v1/admin/keys/${key.body.key_prefix}`, admin);
    await call('DELETE', '/v1/admin/keys/{prefix}', `/v1/admin/keys/${key.body.key_prefix}`, admin);
    const shown = await call('GET', '/v1/admin/accounts/{id}', `/v1/admin/accounts/${id}`, admin);
    assert.ok(
      shown.body.keys.some((k: { revoked_at: string | null }) => k.revoked_at !== null),
      'a revoked key is shown with its time',
    );
  });

  it('agents and runs', async () => {
    await asPro('GET', '/v1/agents', '/v1/agents');
    await call('GET', '/v1/agents', '/v1/agents');
    const idempotent = { headers: { 'idempotency-key': unique('key') } };
    const echo = await asPro('POST', '/v1/runs', '/v1/runs', { ...idempotent, body: { agent: 'echo', input: 'hi' } });
    assert.equal(echo.status, 202);
    await asPro('POST', '/v1/runs', '/v1/runs', { ...idempotent, body: { agent: 'echo', input: 'another' } });
    await asPro('POST', '/v1/runs', '/v1/runs', { body: { agent: 'nope' } });
    await asPro('POST', '/v1/runs', '/v1/runs', { body: { agent: 'echo', timeout_ms: -1 } });
    const waited = await asPro('POST', '/v1/runs/wait', '/v1/runs/wait', { body: { agent: 'echo', input: 'wait for me' } });
    assert.equal(waited.body.status, 'completed');
    await asPro('POST', '/v1/runs/wait', '/v1/runs/wait', { body: { agent: 'nope' } });
    const failing = await asPro('POST', '/v1/runs', '/v1/runs', {
      body: { agent: 'simulate', input: { events: 3, interval_ms: 1, fail_at: 1 } },
    });

    // The limits: a free account's one run; a session's one run.
    const busy = await call('POST', '/v1/runs', '/v1/runs', { token: free.apiKey, body: LONG });
    long.push({ apiKey: free.apiKey, id: busy.body.id });
    const refused = await call('POST', '/v1/runs', '/v1/runs', { token: free.apiKey, body: LONG });
    assert.equal(refused.body.error.code, 'account_concurrency_limit');
    const session = await asPro('POST', '/v1/runs', '/v1/runs', { body: { ...LONG, session_id: 's' } });
    long.push({ apiKey: pro.apiKey, id: session.body.id });
    const sessionRefused = await asPro('POST', '/v1/runs', '/v1/runs', { body: { ...LONG, session_id: 's' } });
    assert.equal(sessionRefused.body.error.code, 'session_concurrency_limit');

    await agentd.waitForEnd(pro.apiKey, echo.body.id);
    await agentd.waitForEnd(pro.apiKey, failing.body.id);
    const done = await asPro('GET', '/v1/runs/{id}', '/v1/runs/{id}'.replace('{id}', echo.body.id));
    assert.deepEqual(done.body.output, { role: 'assistant', content: 'hi' });
    const failed = await asPro('GET', '/v1/runs/{id}', `/v1/runs/${failing.body.id}`);
    assert.equal(failed.body.error.code, 'agent_error');
    await asPro('GET', '/v1/runs/{id}', `/v1/runs/${UNKNOWN}`);

    const page = await asPro('GET', '/v1/runs', '/v1/runs?limit=1');
    assert.ok(page.body.next_cursor);
    await asPro('GET', '/v1/runs', `/v1/runs?limit=1&cursor=${page.body.next_cursor}&status=completed`);
    await asPro('GET', '/v1/runs', '/v1/runs?cursor=not-a-cursor');

    await asPro('POST', '/v1/runs/{id}/cancel', `/v1/runs/${session.body.id}/cancel`);
    await asPro('POST', '/v1/runs/{id}/cancel', `/v1/runs/${UNKNOWN}/cancel`);
  });

  it('event streams and stream tokens', async () => {
    const streamed = await asPro('POST', '/v1/runs/stream', '/v1/runs/stream', { body: { agent: 'echo', input: 'streamed' } });
    assert.equal(streamed.status, 200);
    const runId = streamed.headers.get('x-run-id') ?? '';
    await asPro('POST', '/v1/runs/stream', '/v1/runs/stream', { body: { agent: 'nope' } });

    const events = await asPro('GET', '/v1/runs/{id}/events', `/v1/runs/${runId}/events`);
    const endId = /id: (\S+)\nevent: end/.exec(events.text)?.[1];
    assert.ok(endId);
    await asPro('GET', '/v1/runs/{id}/events', `/v1/runs/${runId}/events?after=${endId}`);
    await asPro('GET', '/v1/runs/{id}/events', `/v1/runs/${runId}/events?after=yesterday`);
    await asPro('GET', '/v1/runs/{id}/events', `/v1/runs/${UNKNOWN}/events`);

    const token = await asPro('POST', '/v1/runs/{id}/stream-token', `/v1/runs/${runId}/stream-token`);
    assert.equal(token.status, 201);
    assert.equal(token.headers.get('cache-control'), 'no-store');
    await asPro('POST', '/v1/runs/{id}/stream-token', `/v1/runs/${UNKNOWN}/stream-token`);
    const byToken = await call('GET', '/v1/runs/{id}/events', token.body.events_url);
    assert.equal(byToken.text, events.text, 'the same events with the token as with the key');
    await call('GET', '/v1/runs/{id}/events', `/v1/runs/${runId}/events?token=${pro.apiKey}`);
  });

  it('saw every operation succeed and fail', () => {
    const missing = spec.operations().flatMap((operation) => {
      const statuses = [...(spec.seen.get(operation) ?? [])];
      const problems = [];
      if (!statuses.some((status) => status < 300)) problems.push(`${operation}: no success`);
      if (!NO_CLIENT_ERROR.has(operation) && !statuses.some((status) => status >= 400)) problems.push(`${operation}: no error`);
      return problems;
    });
    assert.deepEqual(missing, []);
  });
});
