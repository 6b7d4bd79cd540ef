import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createRuntime, type Runtime } from '../../src/index.js';
import { type MockLlm, startMockLlm } from '../../tools/mock-llm/mock-server.js';
import { convertUnits, getWeather, weatherAgent } from '../../examples/weather-agent.js';
import { ADMIN_TOKEN, createStorageEnv } from '../helpers/agentd.js';
import { request } from '../helpers/http.js';
import { readSse } from '../helpers/sse.js';

describe('examples/weather-agent: a tool-using agent over the chat gateway, against the mock LLM over HTTP', () => {
  let mock: MockLlm;
  let runtime: Runtime;
  let url: string;
  let key: string;
  let store: Awaited<ReturnType<typeof createStorageEnv>>;

  before(async () => {
    mock = await startMockLlm({
      models: {
        'mock-tools': {
          tokens: 3,
          toolCalls: [
            { name: 'get_weather', arguments: { city: 'Paris' } },
            { name: 'convert_units', arguments: { value: 18, from: 'c', to: 'f' } },
          ],
        },
        'mock-lost': { toolCalls: [{ name: 'get_weather', arguments: { city: 'Atlantis' } }] },
      },
    });
    store = await createStorageEnv('postgres');
    runtime = createRuntime({
      agents: [weatherAgent],
      env: {},
      config: {
        ...store.env,
        PORT: 0,
        HOST: '127.0.0.1',
        ADMIN_TOKEN,
        LOG_LEVEL: 'error',
        INSTANCE_ID: `example-${process.pid}`,
        SHUTDOWN_GRACE_MS: 2000,
        LLM_PROVIDERS: JSON.stringify([{ name: 'mock', base_url: mock.url, models: ['mock-tools', 'mock-lost'], max_in_flight: 4 }]),
      },
    });
    ({ url } = await runtime.listen());
    const account = await request(url, 'POST', '/v1/admin/accounts', { token: ADMIN_TOKEN, body: { name: 'example', tier: 'pro' } });
    key = account.body.api_key;
  });

  after(async () => {
    await runtime.close();
    await mock.close();
    await store.cleanup();
  });

  it('the tools are deterministic functions', () => {
    assert.deepEqual(getWeather({ city: 'Tokyo' }), { city: 'Tokyo', temp_c: 24, conditions: 'sunny' });
    assert.deepEqual(convertUnits({ value: 10, from: 'km', to: 'mi' }), { value: 6.21, unit: 'mi' });
    assert.deepEqual(convertUnits({ value: 1, from: 'km', to: 'lb' }), { error: 'cannot convert kilometres to pounds' });
  });

  it('calls both tools the model asks for, emits each as a `tool` event, and answers with their results', async () => {
    const stream = await readSse(`${url}/v1/runs/stream`, {
      token: key,
      method: 'POST',
      body: { agent: 'weather', model: 'mock-tools', input: { question: 'How warm is Paris in fahrenheit?' } },
    });
    const types = stream.events.map((e) => e.event);
    assert.deepEqual(types.slice(0, 3), ['status', 'tool', 'tool']);
    assert.deepEqual(types.slice(-2), ['message', 'end']);
    assert.deepEqual(stream.events[1]?.data, {
      name: 'get_weather',
      input: { city: 'Paris' },
      output: { city: 'Paris', temp_c: 18, conditions: 'cloudy' },
    });
    assert.deepEqual(stream.events[2]?.data, {
      name: 'convert_units',
      input: { value: 18, from: 'c', to: 'f' },
      output: { value: 64.4, unit: 'f' },
    });
    // The model's second turn saw the tools' results: the mock answers with them.
    const content = 'Tool results: {"city":"Paris","temp_c":18,"conditions":"cloudy"}; {"value":64.4,"unit":"f"}';
    assert.deepEqual(stream.events.at(-2)?.data, { role: 'assistant', content });
    const tokens = stream.events.filter((e) => e.event === 'token').map((e) => e.data.text as string);
    assert.equal(tokens.join(''), content);
    assert.equal(stream.events.at(-1)?.data.status, 'completed');
    assert.equal(mock.stats().byModel['mock-tools'], 2);
  });

  it("hands a tool's error back to the model rather than failing the run", async () => {
    const stream = await readSse(`${url}/v1/runs/stream`, {
      token: key,
      method: 'POST',
      body: { agent: 'weather', model: 'mock-lost', input: { question: 'Weather in Atlantis?' } },
    });
    assert.deepEqual(stream.events[1]?.data.output, { city: 'Atlantis', error: 'unknown city' });
    assert.equal(stream.events.at(-1)?.data.status, 'completed');
  });
});
