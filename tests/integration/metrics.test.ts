import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startAgentd, type TestAgentd } from '../helpers/agentd.js';
import { metricSum, parseMetrics, type Sample } from '../helpers/metrics.js';
import { cleanupPrefix, redisUrl, uniquePrefix } from '../helpers/redis.js';
import { readSse, type SseResult } from '../helpers/sse.js';
import { waitFor } from '../helpers/wait-for.js';

const SLOTS = 8;
const COMPLETING = 40;
const FAILING = 20;
const STREAMED = 20;
/** The small account's tier allows this many runs; every further request is refused. */
const TINY_LIMIT = 2;
const REFUSED = 18;
const LONG = { agent: 'simulate', input: { events: 10_000, interval_ms: 20 } };
const SHORT = { agent: 'simulate', input: { events: 5, interval_ms: 1 } };
const FAILS = { agent: 'simulate', input: { events: 5, interval_ms: 1, fail_at: 2 } };

describe('/metrics under a mixed load of 100 runs (Postgres and Redis)', () => {
  let agentd: TestAgentd;
  let key: string;
  let tinyKey: string;
  const prefix = uniquePrefix();

  before(async () => {
    agentd = await startAgentd('postgres', {
      REDIS_URL: redisUrl(),
      REDIS_KEY_PREFIX: prefix,
      TIER_LIMITS: `bulk:10000,tiny:${TINY_LIMIT}`,
      MAX_CONCURRENT_AGENT_RUNS: String(SLOTS),
      RUN_QUEUE_MAX: '500',
    });
    key = (await agentd.createAccount('bulk')).apiKey;
    tinyKey = (await agentd.createAccount('tiny')).apiKey;
  });
  after(async () => {
    await agentd.waitForIdle();
    await agentd.close();
    await cleanupPrefix(prefix);
  });

  const scrape = async (): Promise<Sample[]> => {
    const res = await agentd.as(key, 'GET', '/metrics');
    assert.equal(res.status, 200);
    return parseMetrics(res.text);
  };
  const start = async (apiKey: string, body: unknown): Promise<string> => {
    const res = await agentd.as(apiKey, 'POST', '/v1/runs', { body });
    assert.equal(res.status, 202, res.text);
    return res.body.id as string;
  };
  const follow = (id: string, apiKey = key): Promise<SseResult> =>
    readSse(`${agentd.url}/v1/runs/${id}/events`, { token: apiKey, timeoutMs: 60_000 });
  const http = (samples: Sample[], method: string, route: string, statusClass: string) =>
    metricSum(samples, 'agentd_http_requests_total', { method, route, status_class: statusClass });

  it('counts runs admitted, refused, finished, their events and requests, and shows the load while it runs', async () => {
    const before = await scrape();
    // The small account's runs hold two slots through the load, each with a listener open.
    const long = [await start(tinyKey, LONG), await start(tinyKey, LONG)];
    const listeners = long.map((id) => follow(id, tinyKey));
    const refusals = await Promise.all(Array.from({ length: REFUSED }, () => agentd.as(tinyKey, 'POST', '/v1/runs', { body: SHORT })));
    for (const res of refusals) assert.equal(res.body.error.code, 'account_concurrency_limit', res.text);

    const completing = Array.from({ length: COMPLETING }, () => start(key, SHORT));
    const failing = Array.from({ length: FAILING }, () => start(key, FAILS));
    const streamed = Array.from({ length: STREAMED }, () =>
      readSse(`${agentd.url}/v1/runs/stream`, { token: key, method: 'POST', body: SHORT, timeoutMs: 60_000 }),
    );
    const during = await waitFor(
      async () => {
        const samples = await scrape();
        return metricSum(samples, 'agentd_sse_listeners') >= 2 && metricSum(samples, 'agentd_run_slots_in_use') >= TINY_LIMIT
          ? samples
          : undefined;
      },
      { what: 'the load to show in /metrics' },
    );
    assert.equal(metricSum(during, 'agentd_run_slots'), SLOTS);

    const ids = [...(await Promise.all(completing)), ...(await Promise.all(failing))];
    const streams = await Promise.all(streamed);
    for (const stream of streams) assert.equal(stream.events.at(-1)?.data.status, 'completed');
    for (const id of ids) await agentd.waitForEnd(key, id);
    for (const id of long) await agentd.as(tinyKey, 'POST', `/v1/runs/${id}/cancel`);
    const followed = await Promise.all(listeners);
    await agentd.waitForIdle();
    const after = await scrape();
    const delta = (name: string, labels: Record<string, string> = {}) => metricSum(after, name, labels) - metricSum(before, name, labels);

    const admitted = COMPLETING + FAILING + STREAMED + TINY_LIMIT;
    assert.equal(delta('agentd_runs_admitted_total', { agent: 'simulate' }), admitted);
    assert.equal(delta('agentd_runs_started_total'), admitted);
    assert.equal(delta('agentd_run_queue_wait_seconds_count'), admitted);
    assert.equal(delta('agentd_runs_finished_total', { status: 'completed' }), COMPLETING + STREAMED);
    assert.equal(delta('agentd_runs_finished_total', { status: 'failed', error_code: 'agent_error' }), FAILING);
    assert.equal(delta('agentd_runs_finished_total', { status: 'cancelled' }), TINY_LIMIT);
    assert.equal(delta('agentd_runs_finished_total'), admitted);
    assert.equal(delta('agentd_run_duration_seconds_count'), admitted);
    assert.equal(delta('agentd_http_refused_total', { route: '/v1/runs', code: 'account_concurrency_limit' }), REFUSED);
    assert.equal(http(after, 'POST', '/v1/runs', '2xx') - http(before, 'POST', '/v1/runs', '2xx'), COMPLETING + FAILING + TINY_LIMIT);
    assert.equal(http(after, 'POST', '/v1/runs', '4xx') - http(before, 'POST', '/v1/runs', '4xx'), REFUSED);
    assert.equal(http(after, 'POST', '/v1/runs/stream', '2xx') - http(before, 'POST', '/v1/runs/stream', '2xx'), STREAMED);
    assert.ok(metricSum(after, 'agentd_http_request_duration_seconds_count', { route: '/v1/runs/:id' }) >= ids.length);

    // Every event reached each reader once; what the readers got is what was delivered.
    const received = [...streams, ...followed].reduce((sum, stream) => sum + stream.events.length, 0);
    assert.equal(delta('agentd_events_delivered_total'), received);
    assert.ok(delta('agentd_sse_sent_bytes_total') > received * 20, 'bytes sent grow with the events');
    // Read every run once more: what its stream holds is what its run wrote, and the archive took.
    const all = [...ids, ...streams.map((stream) => stream.headers.get('x-run-id') ?? ''), ...long];
    let written = 0;
    for (const id of all) written += (await follow(id, long.includes(id) ? tinyKey : key)).events.length;
    assert.equal(delta('agentd_events_written_total'), written);
    assert.equal(delta('agentd_events_archived_total'), written);
    assert.equal(metricSum(after, 'agentd_sse_listeners'), 0);
    assert.equal(metricSum(after, 'agentd_run_slots_in_use'), 0);
    assert.equal(metricSum(after, 'agentd_archive_pending_events'), 0);
  });

  it('labels HTTP requests by route pattern, with its mount path, never by the path as sent', async () => {
    const missing = '00000000-0000-4000-8000-000000000000';
    assert.equal((await agentd.as(key, 'GET', `/v1/runs/${missing}`)).status, 404);
    assert.equal((await agentd.admin('POST', '/v1/admin/accounts', { body: { tier: 42 } })).status, 400);
    assert.equal((await agentd.as(key, 'GET', `/nothing/${missing}`)).status, 404);
    const samples = await scrape();
    assert.ok(http(samples, 'GET', '/v1/runs/:id', '4xx') >= 1);
    assert.ok(http(samples, 'POST', '/v1/admin/accounts', '4xx') >= 1, 'an error thrown in a mounted router keeps its mount path');
    assert.ok(http(samples, 'GET', '(no route)', '4xx') >= 1);
    const routes = new Set(samples.filter((s) => s.name === 'agentd_http_requests_total').map((s) => s.labels.route));
    assert.ok(![...routes].some((route) => route?.includes(missing)), `no id in a route label: ${[...routes].join(', ')}`);
  });

  it('exposes the standard process and Node.js metrics under their usual names, and agentd_build_info once', async () => {
    const text = (await agentd.as(key, 'GET', '/metrics')).text;
    for (const name of [
      'process_cpu_seconds_total',
      'process_resident_memory_bytes',
      'nodejs_heap_size_used_bytes',
      'nodejs_eventloop_lag_seconds',
    ]) {
      assert.match(text, new RegExp(`^${name} `, 'm'), `${name} is exposed`);
    }
    assert.doesNotMatch(text, /agentd_process_/);
    const build = parseMetrics(text).filter((s) => s.name === 'agentd_build_info');
    assert.equal(build.length, 1);
    assert.match(build[0]?.labels.version ?? '', /^\d+\.\d+\.\d+/);
    assert.equal(build[0]?.labels.node, process.version);
  });
});
