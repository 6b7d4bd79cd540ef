import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, afterEach, before, describe, it } from 'node:test';
import { type MockLlm, mockReply, mockTokens, startMockLlm } from '../../tools/mock-llm/mock-server.js';
import { startAgentd, type TestAgentd } from '../helpers/agentd.js';
import { metricSum, parseMetrics, type Sample } from '../helpers/metrics.js';
import { readSse } from '../helpers/sse.js';
import { waitFor } from '../helpers/wait-for.js';

const API_KEY = 'sk-mock-test-0123456789';
const MODELS = {
  'mock-small': { tokens: 5, tokenLatencyMs: 2 },
  'mock-think': { tokens: 3 },
  'mock-paced': { tokens: 5, tokenLatencyMs: 10 },
  'mock-slow': { tokens: 100_000, tokenLatencyMs: 20 },
  'mock-429': { error: { status: 429, retryAfterS: 0, times: 1 } },
  'mock-500-once': { error: { status: 500, times: 1 } },
  'mock-500': { error: { status: 500 } },
  'mock-hang': { tokens: 10, hangAfterTokens: 2 },
};
const RUN_SLOTS = 60;

/** A chat input no other run sends (the mock counts failures per distinct request body). */
const conversation = (webSearch?: boolean) => ({
  messages: [{ role: 'user', content: `hello ${randomUUID()}` }],
  ...(webSearch === undefined ? {} : { web_search: webSearch }),
});

describe('the chat agent over an OpenAI-compatible provider', () => {
  let mock: MockLlm;
  let agentd: TestAgentd;
  let key: string;

  before(async () => {
    mock = await startMockLlm({ apiKey: API_KEY, models: MODELS });
    agentd = await startAgentd('postgres', {
      TIER_LIMITS: 'bulk:1000',
      MAX_CONCURRENT_AGENT_RUNS: String(RUN_SLOTS),
      LLM_PROVIDERS: JSON.stringify([
        { name: 'mock', base_url: mock.url, api_key_env: 'MOCK_API_KEY', models: Object.keys(MODELS), max_in_flight: 2 },
      ]),
      MOCK_API_KEY: API_KEY,
      LLM_ROUTING_RULES: JSON.stringify([
        { match: { web_search: true }, provider: 'mock', model: 'mock-think' },
        { provider: 'mock', model: 'mock-small' },
      ]),
      LLM_IDLE_TIMEOUT_MS: '300',
      LLM_MAX_RETRIES: '2',
    });
    key = (await agentd.createAccount('bulk')).apiKey;
  });
  afterEach(async () => {
    // Every test leaves the run slots and the LLM limiters at zero, and no request open at the mock.
    await agentd.waitForIdle();
    await waitFor(() => mock.stats().open === 0, { what: 'no request open at the mock' });
    mock.reset();
  });
  after(async () => {
    await agentd.close();
    await mock.close();
  });

  const start = async (body: Record<string, unknown>): Promise<string> => {
    const res = await agentd.as(key, 'POST', '/v1/runs', { body: { agent: 'chat', ...body } });
    assert.equal(res.status, 202, res.text);
    return res.body.id as string;
  };
  const events = (id: string) => readSse(`${agentd.url}/v1/runs/${id}/events`, { token: key });
  const capacity = async () => (await agentd.admin('GET', '/v1/admin/capacity')).body;
  const metric = async (line: RegExp): Promise<number> => {
    const text = (await agentd.as(key, 'GET', '/metrics')).text;
    const match = line.exec(text);
    return match === null ? 0 : Number(match[1]);
  };

  it('is listed with its input schema', async () => {
    const res = await agentd.as(key, 'GET', '/v1/agents');
    const chat = res.body.agents.find((a: { name: string }) => a.name === 'chat');
    assert.ok(chat, 'chat is listed');
    assert.ok(chat.input_schema.properties.messages);
  });

  it('streams tokens as they arrive, then one message with the whole reply, which is the output', async () => {
    const id = await start({ model: 'mock-small', input: conversation() });
    const { events: received } = await events(id);
    const types = received.map((e) => e.event);
    assert.deepEqual(types, ['status', 'token', 'token', 'token', 'token', 'token', 'message', 'end']);
    assert.deepEqual(
      received.filter((e) => e.event === 'token').map((e) => e.data),
      mockTokens(5).map((text) => ({ text })),
    );
    const message = { role: 'assistant', content: mockReply(5) };
    assert.deepEqual(received.find((e) => e.event === 'message')?.data, message);
    const run = await agentd.waitForEnd(key, id);
    assert.equal(run.status, 'completed');
    assert.deepEqual(run.output, message);
    assert.equal(mock.stats().requests, 1);
  });

  it('routes auto by LLM_ROUTING_RULES and caches the choice', async () => {
    const hits = /^agentd_routing_cache_hits_total (\d+)$/m;
    const misses = /^agentd_routing_cache_misses_total (\d+)$/m;
    const before = { hits: await metric(hits), misses: await metric(misses) };
    for (const body of [{ input: conversation(true) }, { model: 'auto', input: conversation(true) }, { input: conversation(false) }]) {
      assert.equal((await agentd.waitForEnd(key, await start(body))).status, 'completed');
    }
    assert.deepEqual(mock.stats().byModel, { 'mock-think': 2, 'mock-small': 1 });
    assert.equal((await metric(hits)) - before.hits, 1);
    assert.equal((await metric(misses)) - before.misses, 2);
  });

  it('fails a model no provider offers with provider_error naming it', async () => {
    const run = await agentd.waitForEnd(key, await start({ model: 'gpt-nope', input: conversation() }));
    assert.equal(run.status, 'failed');
    assert.equal(run.error.code, 'provider_error');
    assert.match(run.error.message, /"gpt-nope"/);
    assert.equal(mock.stats().requests, 0);
  });

  it('refuses bad chat input with 400 naming the field', async () => {
    const res = await agentd.as(key, 'POST', '/v1/runs', {
      body: { agent: 'chat', input: { messages: [{ role: 'wizard', content: 'x' }] } },
    });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.code, 'invalid_request');
    assert.match(res.body.error.field, /^input\.messages\.0\.role$/);
  });

  it('never has more than max_in_flight requests open at the provider, and completes all of 50 concurrent runs', async () => {
    const ids = await Promise.all(Array.from({ length: 50 }, () => start({ model: 'mock-paced', input: conversation() })));
    const runs = await Promise.all(ids.map((id) => agentd.waitForEnd(key, id)));
    for (const run of runs) {
      assert.equal(run.status, 'completed', JSON.stringify(run.error));
      assert.equal(run.output.content, mockReply(5));
    }
    const stats = mock.stats();
    assert.equal(stats.requests, 50);
    assert.equal(stats.maxOpen, 2, 'max_in_flight is 2: never 3 open, and both permits used');
  });

  it('retries a 429 before the first byte without duplicating tokens', async () => {
    const id = await start({ model: 'mock-429', input: conversation() });
    const run = await agentd.waitForEnd(key, id);
    assert.equal(run.status, 'completed', JSON.stringify(run.error));
    assert.equal(mock.stats().requests, 2);
    const { events: received } = await events(id);
    assert.deepEqual(
      received.filter((e) => e.event === 'token').map((e) => e.data.text),
      mockTokens(5),
    );
    assert.equal(run.output.content, mockReply(5));
  });

  it('retries a 500 before the first byte', async () => {
    const run = await agentd.waitForEnd(key, await start({ model: 'mock-500-once', input: conversation() }));
    assert.equal(run.status, 'completed', JSON.stringify(run.error));
    assert.equal(mock.stats().requests, 2);
  });

  it('fails a persistent 500 with provider_error naming the provider, after LLM_MAX_RETRIES', async () => {
    const id = await start({ model: 'mock-500', input: conversation() });
    const run = await agentd.waitForEnd(key, id);
    assert.equal(run.status, 'failed');
    assert.equal(run.error.code, 'provider_error');
    assert.match(run.error.message, /Provider "mock" answered 500/);
    assert.equal(mock.stats().requests, 3);
    const { events: received } = await events(id);
    assert.deepEqual(received.at(-1)?.data, { status: 'failed', error: run.error });
  });

  it('fails a stream that hangs mid-way with provider_timeout after LLM_IDLE_TIMEOUT_MS, freeing every permit', async () => {
    const id = await start({ model: 'mock-hang', input: conversation() });
    const run = await agentd.waitForEnd(key, id);
    assert.equal(run.status, 'failed');
    assert.equal(run.error.code, 'provider_timeout');
    assert.match(run.error.message, /Provider "mock" .*LLM_IDLE_TIMEOUT_MS/);
    const idle = await agentd.waitForIdle();
    assert.equal(idle.llm.global.in_use, 0);
    assert.equal(idle.llm.providers.mock.in_use, 0);
    assert.equal(idle.runs.in_use, 0);
    const { events: received } = await events(id);
    assert.deepEqual(
      received.filter((e) => e.event === 'token').map((e) => e.data.text),
      mockTokens(2),
    );
  });

  it('frees the provider permit when a streaming run is cancelled', async () => {
    const id = await start({ model: 'mock-slow', input: conversation() });
    await readSse(`${agentd.url}/v1/runs/${id}/events`, {
      token: key,
      stopWhen: (seen) => seen.filter((e) => e.event === 'token').length >= 2,
    });
    assert.deepEqual((await capacity()).llm.providers.mock.holders, [id]);
    const cancel = await agentd.as(key, 'POST', `/v1/runs/${id}/cancel`);
    assert.equal(cancel.body.status, 'cancelled');
    const idle = await agentd.waitForIdle();
    assert.deepEqual(idle.llm.providers.mock.holders, []);
    await waitFor(() => mock.stats().open === 0, { what: 'the cancelled request to be closed at the mock' });
  });

  it('ends a streaming run that outlives its timeout_ms timed_out, freeing its permits', async () => {
    const id = await start({ model: 'mock-slow', input: conversation(), timeout_ms: 300 });
    const run = await agentd.waitForEnd(key, id);
    assert.equal(run.status, 'timed_out');
    assert.equal(run.error.code, 'timeout');
  });

  it('counts LLM requests by outcome, their retries, time to first token and duration in /metrics', async () => {
    const scrape = async (): Promise<Sample[]> => parseMetrics((await agentd.as(key, 'GET', '/metrics')).text);
    const before = await scrape();
    const ok = [
      await start({ model: 'mock-small', input: conversation() }),
      await start({ model: 'mock-500-once', input: conversation() }),
    ];
    const failed = await start({ model: 'mock-500', input: conversation() });
    for (const id of ok) assert.equal((await agentd.waitForEnd(key, id)).status, 'completed');
    assert.equal((await agentd.waitForEnd(key, failed)).error.code, 'provider_error');
    const cancelled = await start({ model: 'mock-slow', input: conversation() });
    await readSse(`${agentd.url}/v1/runs/${cancelled}/events`, { token: key, stopWhen: (seen) => seen.some((e) => e.event === 'token') });
    await agentd.as(key, 'POST', `/v1/runs/${cancelled}/cancel`);
    assert.equal((await agentd.waitForEnd(key, cancelled)).status, 'cancelled');

    const after = await waitFor(async () => {
      const samples = await scrape();
      return metricSum(samples, 'agentd_llm_requests_total') - metricSum(before, 'agentd_llm_requests_total') === 4 ? samples : undefined;
    });
    const delta = (name: string, labels: Record<string, string> = {}) =>
      metricSum(after, name, { provider: 'mock', ...labels }) - metricSum(before, name, { provider: 'mock', ...labels });
    assert.equal(delta('agentd_llm_requests_total', { outcome: 'ok' }), 2);
    assert.equal(delta('agentd_llm_requests_total', { outcome: 'provider_error' }), 1);
    assert.equal(delta('agentd_llm_requests_total', { outcome: 'cancelled' }), 1);
    // One retry of the 500 that came once, LLM_MAX_RETRIES (2) of the one that stayed.
    assert.equal(delta('agentd_llm_retries_total'), 3);
    // A first token came for the two answered requests and the cancelled one, none for the failed one.
    assert.equal(delta('agentd_llm_time_to_first_token_seconds_count'), 3);
    assert.ok(delta('agentd_llm_time_to_first_token_seconds_sum') > 0);
    assert.equal(delta('agentd_llm_request_duration_seconds_count', { outcome: 'ok' }), 2);
    assert.equal(delta('agentd_llm_request_duration_seconds_count'), 4);
  });

  it('shows the LLM limiters with their holders and waiters in capacity and metrics', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i += 1) {
      ids.push(await start({ model: 'mock-slow', input: conversation() }));
      // One at a time, so which run waits is known.
      await waitFor(async () => (await capacity()).llm.global.holders.includes(ids[i]), { what: `run ${i} to hold a global permit` });
    }
    const view = await waitFor(async () => {
      const body = await capacity();
      return body.llm.providers.mock.in_use === 2 && body.llm.providers.mock.queued === 1 ? body : undefined;
    });
    assert.deepEqual(view.limits.GLOBAL_MAX_INFLIGHT, { value: RUN_SLOTS, source: 'auto' });
    assert.equal(view.llm.global.limit, RUN_SLOTS);
    assert.deepEqual([...view.llm.global.holders].sort(), [...ids].sort(), 'the global permit is held while waiting for the provider');
    assert.deepEqual(view.llm.providers.mock.holders, ids.slice(0, 2));
    assert.deepEqual(view.llm.providers.mock.waiting, [ids[2]]);
    assert.equal(view.llm.providers.mock.limit, 2);
    assert.equal(await metric(/^agentd_llm_in_flight\{scope="provider",provider="mock"\} (\d+)$/m), 2);
    assert.equal(await metric(/^agentd_llm_queued\{scope="provider",provider="mock"\} (\d+)$/m), 1);
    assert.equal(await metric(/^agentd_llm_in_flight\{scope="global"\} (\d+)$/m), 3);
    assert.equal(await metric(/^agentd_llm_limit\{scope="global"\} (\d+)$/m), RUN_SLOTS);
    for (const id of ids) await agentd.as(key, 'POST', `/v1/runs/${id}/cancel`);
    for (const id of ids) assert.equal((await agentd.waitForEnd(key, id)).status, 'cancelled');
  });
});

describe('without LLM_PROVIDERS', () => {
  let agentd: TestAgentd;
  let key: string;
  before(async () => {
    agentd = await startAgentd('postgres');
    key = (await agentd.createAccount('pro')).apiKey;
  });
  after(async () => {
    await agentd.waitForIdle();
    await agentd.close();
  });

  it('does not offer the chat agent', async () => {
    const agents = await agentd.as(key, 'GET', '/v1/agents');
    assert.ok(!agents.body.agents.some((a: { name: string }) => a.name === 'chat'));
    const res = await agentd.as(key, 'POST', '/v1/runs', { body: { agent: 'chat', input: conversation() } });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.code, 'unknown_agent');
  });

  it('still shows the global LLM limiter, with no providers', async () => {
    const { body } = await agentd.admin('GET', '/v1/admin/capacity');
    assert.deepEqual(body.llm.providers, {});
    assert.equal(body.llm.global.in_use, 0);
  });
});
