import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/config.js';
import type { RoutingRule } from '../../src/config/llm-providers.js';
import { ConfigError, RunFailure } from '../../src/domain/index.js';
import { ModelRoutingError, ProviderError, ProviderTimeoutError } from '../../src/llm/errors.js';
import { LlmLimiters } from '../../src/llm/llm-limiters.js';
import { modelPatternMatcher } from '../../src/llm/model-patterns.js';
import { ModelRouter } from '../../src/llm/model-router.js';
import { selectTimeout } from '../../src/llm/request-timeout.js';
import { BACKOFF_BASE_MS, BACKOFF_CAP_MS, decideRetry, parseRetryAfterMs } from '../../src/llm/retry-policy.js';
import { SseDataDecoder } from '../../src/llm/sse-data-decoder.js';
import { waitFor } from '../helpers/wait-for.js';

const PROVIDERS = JSON.stringify([
  {
    name: 'mock',
    base_url: 'http://127.0.0.1:4010/v1/',
    api_key_env: 'MOCK_API_KEY',
    models: ['mock-small', 'mock-think'],
    max_in_flight: 2,
  },
  { name: 'other', base_url: 'https://llm.example/v1', models: ['big', 'mock-small'], max_in_flight: 5 },
]);
const RULES = JSON.stringify([
  { match: { web_search: true }, provider: 'mock', model: 'mock-think' },
  { provider: 'other', model: 'big' },
]);

describe('request timeout by type', () => {
  const timeouts = { baseMs: 1, webSearchMs: 2, thinkingMs: 3, webThinkingMs: 4 };
  for (const [webSearch, thinking, timeoutMs, setting] of [
    [false, false, 1, 'LLM_TIMEOUT_MS'],
    [true, false, 2, 'LLM_WEB_SEARCH_TIMEOUT_MS'],
    [false, true, 3, 'LLM_THINKING_TIMEOUT_MS'],
    [true, true, 4, 'LLM_WEB_THINKING_TIMEOUT_MS'],
  ] as const) {
    it(`web_search=${webSearch} thinking=${thinking} takes ${setting}`, () => {
      assert.deepEqual(selectTimeout(timeouts, { webSearch, thinking }), { timeoutMs, setting });
    });
  }
});

describe('thinking-model patterns', () => {
  const isThinking = modelPatternMatcher(loadConfig({}).llm.thinkingModels);

  it('matches the default patterns on the whole name, ignoring case', () => {
    for (const model of ['kimi-thinking-preview', 'Thinking', 'o1', 'o1-mini', 'O3-pro']) assert.ok(isThinking(model), model);
    for (const model of ['gpt-4o', 'mock-think', 'gpt-o1', 'xo3']) assert.ok(!isThinking(model), model);
  });

  it('treats only * as special', () => {
    const match = modelPatternMatcher(['gpt-4.1*', 'a+b']);
    assert.ok(match('gpt-4.1-mini'));
    assert.ok(!match('gpt-401'));
    assert.ok(match('a+b'));
    assert.ok(!match('aab'));
  });
});

describe('model routing', () => {
  const config = loadConfig({ LLM_PROVIDERS: PROVIDERS, MOCK_API_KEY: 'k', LLM_ROUTING_RULES: RULES });
  const setup = (ttlMs = 1_000, rules: readonly RoutingRule[] | 'none' = config.llm.routingRules ?? 'none') => {
    let now = 0;
    const counts = { hits: 0, misses: 0 };
    const router = new ModelRouter({
      providers: config.llm.providers,
      rules: rules === 'none' ? undefined : rules,
      cacheTtlMs: ttlMs,
      now: () => now,
      observer: { cacheHit: () => (counts.hits += 1), cacheMiss: () => (counts.misses += 1) },
    });
    return { router, counts, advance: (ms: number) => (now += ms) };
  };

  it('routes auto (and no model) by the first matching rule', () => {
    const { router } = setup();
    assert.deepEqual(router.resolve('auto', { webSearch: true, agent: 'chat' }), { provider: 'mock', model: 'mock-think' });
    assert.deepEqual(router.resolve(null, { webSearch: false, agent: 'chat' }), { provider: 'other', model: 'big' });
  });

  it('caches per rule-relevant inputs, counting hits and misses, until the TTL expires', () => {
    const { router, counts, advance } = setup(1_000);
    router.resolve('auto', { webSearch: true, agent: 'chat' });
    router.resolve('auto', { webSearch: true, agent: 'other-agent' }); // no rule looks at agent: same key
    router.resolve('auto', { webSearch: false, agent: 'chat' });
    assert.deepEqual(counts, { hits: 1, misses: 2 });
    advance(999);
    router.resolve('auto', { webSearch: true, agent: 'chat' });
    assert.deepEqual(counts, { hits: 2, misses: 2 });
    advance(1);
    assert.deepEqual(router.resolve('auto', { webSearch: true, agent: 'chat' }), { provider: 'mock', model: 'mock-think' });
    assert.deepEqual(counts, { hits: 2, misses: 3 });
  });

  it('does not cache with a TTL of 0, and explicit models bypass the cache', () => {
    const { router, counts } = setup(0);
    router.resolve('auto', { webSearch: true, agent: 'chat' });
    router.resolve('auto', { webSearch: true, agent: 'chat' });
    router.resolve('big', { webSearch: true, agent: 'chat' });
    assert.deepEqual(counts, { hits: 0, misses: 2 });
  });

  it('looks explicit models up among the providers: first provider wins, <provider>/<model> picks', () => {
    const { router } = setup();
    const inputs = { webSearch: false, agent: 'chat' };
    assert.deepEqual(router.resolve('mock-small', inputs), { provider: 'mock', model: 'mock-small' });
    assert.deepEqual(router.resolve('other/mock-small', inputs), { provider: 'other', model: 'mock-small' });
    assert.deepEqual(router.resolve('big', inputs), { provider: 'other', model: 'big' });
  });

  it('fails an unknown model with provider_error naming it', () => {
    const { router } = setup();
    assert.throws(
      () => router.resolve('gpt-9', { webSearch: false, agent: 'chat' }),
      (error: unknown) => error instanceof ModelRoutingError && error.runErrorCode === 'provider_error' && /"gpt-9"/.test(error.message),
    );
  });

  it('fails when no rule matches, and defaults to the first provider without rules', () => {
    const picky = setup(1_000, [{ match: { web_search: true }, provider: 'mock', model: 'mock-think' }]);
    assert.throws(() => picky.router.resolve('auto', { webSearch: false, agent: 'chat' }), ModelRoutingError);
    const bare = setup(1_000, 'none');
    assert.deepEqual(bare.router.resolve('auto', { webSearch: true, agent: 'chat' }), { provider: 'mock', model: 'mock-small' });
  });

  it('keys the cache by agent when a rule matches on it', () => {
    const { router, counts } = setup(1_000, [
      { match: { agent: 'chat' }, provider: 'mock', model: 'mock-think' },
      { match: {}, provider: 'other', model: 'big' },
    ]);
    assert.equal(router.resolve('auto', { webSearch: false, agent: 'chat' }).model, 'mock-think');
    assert.equal(router.resolve('auto', { webSearch: false, agent: 'summarize' }).model, 'big');
    assert.deepEqual(counts, { hits: 0, misses: 2 });
  });
});

describe('retry policy', () => {
  const base = { retriesSoFar: 0, maxRetries: 3, retryAfterMs: undefined, nowMs: 1_000, deadlineMs: 1_000_000 };

  it('reads retry-after-ms, Retry-After seconds and HTTP dates', () => {
    const headers = (h: Record<string, string>) => new Headers(h);
    assert.equal(parseRetryAfterMs(headers({ 'retry-after': '2' }), 0), 2_000);
    assert.equal(parseRetryAfterMs(headers({ 'retry-after': '0.5' }), 0), 500);
    assert.equal(parseRetryAfterMs(headers({ 'retry-after-ms': '250', 'retry-after': '9' }), 0), 250);
    const now = Date.parse('2025-01-01T00:00:00Z');
    assert.equal(parseRetryAfterMs(headers({ 'retry-after': 'Wed, 01 Jan 2025 00:00:03 GMT' }), now), 3_000);
    assert.equal(parseRetryAfterMs(headers({ 'retry-after': 'soon' }), now), undefined);
    assert.equal(parseRetryAfterMs(headers({}), now), undefined);
  });

  it('backs off exponentially with full jitter, capped', () => {
    for (const retriesSoFar of [0, 1, 2]) {
      const ceiling = BACKOFF_BASE_MS * 2 ** retriesSoFar;
      assert.deepEqual(decideRetry({ ...base, retriesSoFar, random: () => 0 }), { retry: true, delayMs: 0 });
      const top = decideRetry({ ...base, retriesSoFar, random: () => 0.9999 });
      assert.ok(top.retry && top.delayMs < ceiling && top.delayMs >= ceiling * 0.99, JSON.stringify(top));
    }
    const capped = decideRetry({ ...base, retriesSoFar: 10, maxRetries: 20, random: () => 0.9999 });
    assert.ok(capped.retry && capped.delayMs < BACKOFF_CAP_MS);
  });

  it('waits at least what Retry-After asks', () => {
    assert.deepEqual(decideRetry({ ...base, retryAfterMs: 3_000, random: () => 0.5 }), { retry: true, delayMs: 3_000 });
  });

  it('stops after maxRetries', () => {
    assert.deepEqual(decideRetry({ ...base, retriesSoFar: 3, random: () => 0 }), { retry: false, reason: 'exhausted' });
    assert.deepEqual(decideRetry({ ...base, maxRetries: 0, random: () => 0 }), { retry: false, reason: 'exhausted' });
  });

  it('stops instead of waiting past the deadline', () => {
    assert.deepEqual(decideRetry({ ...base, retryAfterMs: 5_000, deadlineMs: 5_999, random: () => 0 }), {
      retry: false,
      reason: 'deadline',
    });
    assert.deepEqual(decideRetry({ ...base, retryAfterMs: 5_000, deadlineMs: 6_001, random: () => 0 }), { retry: true, delayMs: 5_000 });
  });
});

describe('LLM configuration', () => {
  it('defaults: no providers, the documented timeouts, GLOBAL_MAX_INFLIGHT left to sizing', () => {
    const config = loadConfig({});
    assert.deepEqual(config.llm.providers, []);
    assert.equal(config.llm.globalMaxInflight, undefined);
    assert.equal(config.llm.timeoutMs, 240_000);
    assert.equal(config.llm.webSearchTimeoutMs, 300_000);
    assert.equal(config.llm.thinkingTimeoutMs, 360_000);
    assert.equal(config.llm.webThinkingTimeoutMs, 420_000);
    assert.equal(config.llm.idleTimeoutMs, 60_000);
    assert.deepEqual(config.llm.thinkingModels, ['*thinking*', 'o1*', 'o3*']);
    assert.equal(config.llm.maxRetries, 3);
    assert.equal(config.llm.routingRules, undefined);
    assert.equal(config.llm.routingCacheTtlMs, 180_000);
  });

  it('parses providers, resolving each key from the variable it names', () => {
    const config = loadConfig({ LLM_PROVIDERS: PROVIDERS, MOCK_API_KEY: 'sk-test', LLM_ROUTING_RULES: RULES, GLOBAL_MAX_INFLIGHT: '7' });
    const [mock, other] = config.llm.providers;
    assert.deepEqual(mock, {
      name: 'mock',
      baseUrl: 'http://127.0.0.1:4010/v1',
      apiKeyEnv: 'MOCK_API_KEY',
      apiKey: 'sk-test',
      models: ['mock-small', 'mock-think'],
      maxInFlight: 2,
    });
    assert.equal(other?.apiKey, null);
    assert.equal(config.llm.globalMaxInflight, 7);
    assert.equal(config.llm.routingRules?.length, 2);
    assert.equal(config.sources.LLM_PROVIDERS, 'env');
  });

  const entry = { name: 'p', base_url: 'http://x/v1', models: ['m'], max_in_flight: 1 };
  for (const [what, env, pattern] of [
    ['bad JSON', { LLM_PROVIDERS: '[{"name":' }, /LLM_PROVIDERS must be a JSON array/],
    ['an object instead of an array', { LLM_PROVIDERS: JSON.stringify(entry) }, /LLM_PROVIDERS/],
    ['a missing base_url', { LLM_PROVIDERS: JSON.stringify([{ ...entry, base_url: undefined }]) }, /LLM_PROVIDERS \[0\]\.base_url/],
    ['no models', { LLM_PROVIDERS: JSON.stringify([{ ...entry, models: [] }]) }, /LLM_PROVIDERS \[0\]\.models/],
    [
      'a missing max_in_flight',
      { LLM_PROVIDERS: JSON.stringify([{ ...entry, max_in_flight: undefined }]) },
      /LLM_PROVIDERS \[0\]\.max_in_flight/,
    ],
    ['an unknown field', { LLM_PROVIDERS: JSON.stringify([{ ...entry, api_key: 'sk-inline' }]) }, /LLM_PROVIDERS/],
    ['a non-http base_url', { LLM_PROVIDERS: JSON.stringify([{ ...entry, base_url: 'ftp://x' }]) }, /LLM_PROVIDERS \[0\]\.base_url/],
    [
      'a base_url with credentials',
      { LLM_PROVIDERS: JSON.stringify([{ ...entry, base_url: 'https://u:p@x/v1' }]) },
      /LLM_PROVIDERS \[0\]\.base_url/,
    ],
    ['a duplicate name', { LLM_PROVIDERS: JSON.stringify([entry, entry]) }, /LLM_PROVIDERS names provider "p" twice/],
    [
      'an unset key variable',
      { LLM_PROVIDERS: JSON.stringify([{ ...entry, api_key_env: 'P_KEY' }]) },
      /LLM_PROVIDERS \[0\]\.api_key_env names P_KEY/,
    ],
    ['rules without providers', { LLM_ROUTING_RULES: RULES }, /LLM_ROUTING_RULES needs LLM_PROVIDERS/],
    [
      'a rule naming an unknown provider',
      { LLM_PROVIDERS: JSON.stringify([entry]), LLM_ROUTING_RULES: '[{"provider":"q","model":"m"}]' },
      /LLM_ROUTING_RULES \[0\]\.provider "q"/,
    ],
    [
      'a rule naming a model its provider lacks',
      { LLM_PROVIDERS: JSON.stringify([entry]), LLM_ROUTING_RULES: '[{"provider":"p","model":"z"}]' },
      /LLM_ROUTING_RULES \[0\]\.model "z"/,
    ],
    [
      'a rule matching an unknown feature',
      { LLM_PROVIDERS: JSON.stringify([entry]), LLM_ROUTING_RULES: '[{"match":{"vision":true},"provider":"p","model":"m"}]' },
      /LLM_ROUTING_RULES/,
    ],
    ['a bad GLOBAL_MAX_INFLIGHT', { GLOBAL_MAX_INFLIGHT: '0' }, /GLOBAL_MAX_INFLIGHT/],
    ['a bad LLM_IDLE_TIMEOUT_MS', { LLM_IDLE_TIMEOUT_MS: 'soon' }, /LLM_IDLE_TIMEOUT_MS/],
  ] as const) {
    it(`stops on ${what} with a ConfigError naming the variable`, () => {
      assert.throws(
        () => loadConfig(env),
        (error: unknown) => error instanceof ConfigError && pattern.test(error.message),
      );
    });
  }
});

describe('SSE data decoding', () => {
  const bytes = (text: string) => new TextEncoder().encode(text);

  it('yields data payloads across chunk boundaries, CRLF and multi-line data, skipping comments', () => {
    const decoder = new SseDataDecoder();
    assert.deepEqual(decoder.push(bytes(': ping\n\ndata: {"a"')), []);
    assert.deepEqual(decoder.push(bytes(':1}\n\nevent: x\r\ndata: one\r\ndata: two\r\n\r\ndata: [DONE]\n')), ['{"a":1}', 'one\ntwo']);
    assert.deepEqual(decoder.push(bytes('\n')), ['[DONE]']);
  });

  it('decodes a multi-byte character split between chunks', () => {
    const decoder = new SseDataDecoder();
    const all = bytes('data: é\n\n');
    assert.deepEqual(decoder.push(all.subarray(0, 7)), []);
    assert.deepEqual(decoder.push(all.subarray(7)), ['é']);
  });
});

describe('LLM limiters', () => {
  const limiters = (globalLimit = 4, providerLimit = 1, queueTimeoutMs = 10_000) =>
    new LlmLimiters({ globalLimit, providers: new Map([['p', providerLimit]]), queueMax: 10, queueTimeoutMs });
  const never = new AbortController().signal;

  it('names permits by run, numbering concurrent requests of one run, and releases both idempotently', async () => {
    const llm = limiters(4, 2);
    const first = await llm.lease('run-a', 'p', never);
    const second = await llm.lease('run-a', 'p', never);
    assert.equal(first.holder, 'run-a');
    assert.equal(second.holder, 'run-a#1');
    const snapshot = llm.snapshot();
    assert.deepEqual(snapshot.global.holders, ['run-a', 'run-a#1']);
    assert.deepEqual(snapshot.providers.p?.holders, ['run-a', 'run-a#1']);
    first.release();
    first.release();
    assert.equal(llm.global.inUse, 1);
    assert.equal((await llm.lease('run-a', 'p', never)).holder, 'run-a', 'a freed number is reused');
  });

  it('holds the global permit while queued for the provider, and frees everything when the wait is aborted', async () => {
    const llm = limiters(4, 1);
    const holding = await llm.lease('run-a', 'p', never);
    const abort = new AbortController();
    const waiting = llm.lease('run-b', 'p', abort.signal);
    await waitFor(() => llm.providers.get('p')?.queued === 1, { what: 'run-b to queue for the provider' });
    assert.deepEqual(llm.snapshot().global.holders, ['run-a', 'run-b']);
    assert.deepEqual(llm.snapshot().providers.p?.waiting, ['run-b']);
    abort.abort(new Error('cancelled'));
    await assert.rejects(waiting, /cancelled/);
    assert.equal(llm.global.inUse, 1);
    assert.equal(llm.providers.get('p')?.queued, 0);
    holding.release();
    assert.equal(llm.global.inUse, 0);
    assert.equal(llm.providers.get('p')?.inUse, 0);
  });

  it('fails a wait that outlasts the queue timeout with provider_timeout, holding nothing', async () => {
    const llm = limiters(4, 1, 20);
    const holding = await llm.lease('run-a', 'p', never);
    await assert.rejects(
      llm.lease('run-b', 'p', never),
      (error: unknown) => error instanceof ProviderTimeoutError && error.runErrorCode === 'provider_timeout' && /"p"/.test(error.message),
    );
    assert.equal(llm.global.inUse, 1);
    holding.release();
  });

  it('gives provider errors the contract codes', () => {
    assert.ok(new ProviderError('p', 'answered 500') instanceof RunFailure);
    assert.equal(new ProviderError('p', 'answered 500').message, 'Provider "p" answered 500.');
    assert.equal(new ProviderTimeoutError('p', 'x').runErrorCode, 'provider_timeout');
  });
});
