import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import type { LlmProviderConfig } from '../../src/config/llm-providers.js';
import { ProviderError, ProviderTimeoutError } from '../../src/llm/errors.js';
import { type ChatRequest, LlmGateway, type LlmGatewayOptions } from '../../src/llm/llm-gateway.js';
import { LlmLimiters } from '../../src/llm/llm-limiters.js';
import { type MockLlm, mockReply, mockTokens, startMockLlm } from '../../tools/mock-llm/mock-server.js';
import { modelPatternMatcher } from '../../src/llm/model-patterns.js';
import { ModelRouter } from '../../src/llm/model-router.js';
import { waitFor } from '../helpers/wait-for.js';

const API_KEY = 'sk-mock-0123456789';
const MODELS = {
  fast: {},
  paced: { tokens: 5, tokenLatencyMs: 20 },
  slow: { tokens: 10_000, tokenLatencyMs: 10 },
  'rate-limited': { error: { status: 429, retryAfterS: 0, times: 1 } },
  'rate-limited-long': { error: { status: 429, retryAfterS: 60 } },
  broken: { error: { status: 500 } },
  unauthorized: { error: { status: 401 } },
  'hang-first-byte': { hangBeforeFirstByte: true },
  'hang-mid-stream': { tokens: 10, hangAfterTokens: 3 },
  'late-thinking': { firstByteDelayMs: 900 },
  'late-plain': { firstByteDelayMs: 900 },
  tools: {
    toolCalls: [
      { name: 'get_weather', arguments: { city: 'Paris' } },
      { name: 'convert_units', arguments: { value: 18, from: 'c', to: 'f' } },
    ],
  },
};

const TOOLS = ['get_weather', 'convert_units'].map((name) => ({
  type: 'function' as const,
  function: { name, description: `the ${name} tool`, parameters: { type: 'object' } },
}));

/** Gateway tests at the HTTP level: the real client against the mock server, no agentd. */
describe('LLM gateway against the mock server', () => {
  let mock: MockLlm;
  let limiters: LlmLimiters;
  let options: LlmGatewayOptions;
  let gateway: LlmGateway;
  let seq = 0;

  before(async () => {
    mock = await startMockLlm({ apiKey: API_KEY, models: MODELS });
    const providers: LlmProviderConfig[] = [
      { name: 'mock', baseUrl: mock.url, apiKeyEnv: 'MOCK_API_KEY', apiKey: API_KEY, models: Object.keys(MODELS), maxInFlight: 2 },
      {
        name: 'down',
        baseUrl: `http://127.0.0.1:${await closedPort()}/v1`,
        apiKeyEnv: null,
        apiKey: null,
        models: ['nowhere'],
        maxInFlight: 1,
      },
    ];
    limiters = new LlmLimiters({
      globalLimit: 10,
      providers: new Map(providers.map((p) => [p.name, p.maxInFlight])),
      queueMax: 10,
      queueTimeoutMs: 5_000,
    });
    options = {
      providers,
      limiters,
      router: new ModelRouter({
        providers,
        rules: undefined,
        cacheTtlMs: 1_000,
        observer: { cacheHit: () => undefined, cacheMiss: () => undefined },
      }),
      timeouts: { baseMs: 500, webSearchMs: 500, thinkingMs: 10_000, webThinkingMs: 10_000 },
      idleTimeoutMs: 150,
      maxRetries: 2,
      isThinkingModel: modelPatternMatcher(['*thinking*']),
      random: () => 0, // no jitter: retries go at once unless Retry-After says otherwise
    };
    gateway = new LlmGateway(options);
  });
  afterEach(async () => {
    // Every permit is back and every request the mock saw is closed.
    assert.equal(limiters.global.inUse, 0);
    for (const semaphore of limiters.providers.values()) assert.equal(semaphore.inUse, 0);
    await waitFor(() => mock.stats().open === 0, { what: 'the mock to have no open request' });
    mock.reset();
  });
  after(() => mock.close());

  const chat = (model: string, extra: Partial<ChatRequest> = {}) => {
    const deltas: string[] = [];
    seq += 1;
    const promise = gateway.chat({
      runId: `run-${seq}`,
      agent: 'chat',
      model,
      messages: [{ role: 'user', content: `hello ${seq}` }],
      webSearch: false,
      signal: new AbortController().signal,
      onDelta: (text) => deltas.push(text),
      ...extra,
    });
    return { promise, deltas };
  };

  it('offers tools and returns the streamed tool calls whole, then the reply to their results', async () => {
    const first = await chat('tools', { tools: TOOLS }).promise;
    assert.equal(first.finishReason, 'tool_calls');
    assert.equal(first.content, '');
    assert.deepEqual(
      first.toolCalls.map((call) => [call.type, call.function.name, JSON.parse(call.function.arguments)]),
      [
        ['function', 'get_weather', { city: 'Paris' }],
        ['function', 'convert_units', { value: 18, from: 'c', to: 'f' }],
      ],
    );
    assert.equal(new Set(first.toolCalls.map((call) => call.id)).size, 2);
    const { promise, deltas } = chat('tools', {
      tools: TOOLS,
      messages: [
        { role: 'user', content: 'weather in Paris, in fahrenheit?' },
        { role: 'assistant', content: null, tool_calls: first.toolCalls },
        { role: 'tool', tool_call_id: first.toolCalls[0]?.id ?? '', content: '{"temp_c":18}' },
        { role: 'tool', tool_call_id: first.toolCalls[1]?.id ?? '', content: '{"value":64.4}' },
      ],
    });
    const second = await promise;
    assert.equal(second.content, 'Tool results: {"temp_c":18}; {"value":64.4}');
    assert.deepEqual(second.toolCalls, []);
    assert.equal(deltas.join(''), second.content);
    // Offered no tools, the same model answers in text: the tools reached it only when given.
    const plain = await chat('tools').promise;
    assert.deepEqual(plain.toolCalls, []);
    assert.equal(plain.content, mockReply(5));
  });

  it('streams the deltas in order and returns the whole reply, sending the API key', async () => {
    const { promise, deltas } = chat('fast');
    const result = await promise;
    assert.deepEqual(deltas, mockTokens(5));
    assert.equal(result.content, mockReply(5));
    assert.deepEqual(
      { provider: result.provider, model: result.model, finishReason: result.finishReason, attempts: result.attempts },
      {
        provider: 'mock',
        model: 'fast',
        finishReason: 'stop',
        attempts: 1,
      },
    );
  });

  it('retries a 429 before the first byte, without duplicating tokens', async () => {
    const { promise, deltas } = chat('rate-limited');
    const result = await promise;
    assert.equal(result.attempts, 2);
    assert.equal(mock.stats().requests, 2);
    assert.deepEqual(deltas, mockTokens(5));
  });

  it('gives up at once when Retry-After reaches past the request deadline', async () => {
    await assert.rejects(chat('rate-limited-long').promise, (error: unknown) => {
      assert.ok(error instanceof ProviderError);
      assert.equal(error.status, 429);
      assert.match(error.message, /^Provider "mock" answered 429.*no time left to retry before LLM_TIMEOUT_MS/);
      return true;
    });
    assert.equal(mock.stats().requests, 1);
  });

  it('fails a persistent 500 after LLM_MAX_RETRIES retries, naming the provider', async () => {
    await assert.rejects(chat('broken').promise, (error: unknown) => {
      assert.ok(error instanceof ProviderError);
      assert.equal(error.runErrorCode, 'provider_error');
      assert.match(error.message, /^Provider "mock" answered 500.*after 3 attempts/);
      return true;
    });
    assert.equal(mock.stats().requests, 3);
  });

  it('does not retry a 401', async () => {
    await assert.rejects(
      chat('unauthorized').promise,
      /Provider "mock" refused agentd's credentials \(401\); the operator should check its key/,
    );
    assert.equal(mock.stats().requests, 1);
  });

  it('retries a provider it cannot reach, then fails naming it', async () => {
    await assert.rejects(
      chat('nowhere').promise,
      /^ProviderError: Provider "down" could not be reached: ECONNREFUSED; gave up after 3 attempts/,
    );
  });

  it('times out a provider that never answers with provider_timeout and the timeout of its type', async () => {
    await assert.rejects(chat('hang-first-byte').promise, (error: unknown) => {
      assert.ok(error instanceof ProviderTimeoutError);
      assert.equal(error.runErrorCode, 'provider_timeout');
      assert.match(error.message, /^Provider "mock" did not finish within 500 ms \(LLM_TIMEOUT_MS\)/);
      return true;
    });
  });

  it('gives a thinking model its longer timeout', async () => {
    // The same answer delay: past LLM_TIMEOUT_MS for a plain model, within it for a thinking one.
    await assert.rejects(chat('late-plain').promise, ProviderTimeoutError);
    const thinking = new LlmGateway({ ...options, isThinkingModel: (model) => model === 'late-thinking' });
    seq += 1;
    const result = await thinking.chat({
      runId: `run-${seq}`,
      agent: 'chat',
      model: 'late-thinking',
      messages: [{ role: 'user', content: `hello ${seq}` }],
      webSearch: false,
      signal: new AbortController().signal,
      onDelta: () => undefined,
    });
    assert.equal(result.content, mockReply(5));
  });

  it('aborts a stream that goes silent after LLM_IDLE_TIMEOUT_MS, keeping the tokens already streamed', async () => {
    const { promise, deltas } = chat('hang-mid-stream');
    await assert.rejects(promise, (error: unknown) => {
      assert.ok(error instanceof ProviderTimeoutError);
      assert.match(error.message, /LLM_IDLE_TIMEOUT_MS/);
      return true;
    });
    assert.deepEqual(deltas, mockTokens(3));
    assert.equal(mock.stats().requests, 1, 'a stream that started is never retried');
  });

  it('stops on the run signal mid-stream with its reason, closing the connection', async () => {
    const abort = new AbortController();
    const { promise, deltas } = chat('slow', { signal: abort.signal });
    await waitFor(() => deltas.length >= 3, { what: 'tokens to stream' });
    assert.deepEqual(limiters.snapshot().providers.mock?.holders, [`run-${seq}`]);
    const reason = new Error('cancelled by the test');
    abort.abort(reason);
    await assert.rejects(promise, (error: unknown) => error === reason);
  });

  it('never has more requests open at the provider than its max_in_flight', async () => {
    const runs = Array.from({ length: 12 }, () => chat('paced').promise);
    const results = await Promise.all(runs);
    assert.ok(results.every((r) => r.content === mockReply(5)));
    assert.equal(mock.stats().maxOpen, 2);
    assert.equal(mock.stats().requests, 12);
  });
});

/** A loopback port nothing listens on (it was free a moment ago). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}
