/**
 * `npm run mock-llm`: the mock OpenAI-compatible server on 127.0.0.1:MOCK_LLM_PORT (default
 * 4010), for trying the `chat` agent and for the benchmark. Optional MOCK_LLM_DEFAULTS and
 * MOCK_LLM_MODELS (JSON: behaviour, and behaviour by model name) set what it answers; a
 * request's `x-mock` header overrides per request. Stops on SIGINT / SIGTERM.
 */
import { z } from 'zod';
import { mockOverrideSchema, startMockLlm } from './mock-server.js';

function fromEnv<T>(name: string, schema: z.ZodType<T>, fallback: T): T {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  try {
    return schema.parse(JSON.parse(raw));
  } catch (error) {
    process.stderr.write(`mock-llm: ${name} is invalid: ${(error as Error).message}\n`);
    process.exit(2);
  }
}

const port = fromEnv('MOCK_LLM_PORT', z.number().int().min(0).max(65535), 4010);
const mock = await startMockLlm({
  port,
  defaults: fromEnv('MOCK_LLM_DEFAULTS', mockOverrideSchema, {}),
  models: fromEnv('MOCK_LLM_MODELS', z.record(z.string(), mockOverrideSchema), {}),
});
process.stdout.write(`mock-llm: listening at ${mock.url} (POST /chat/completions)\n`);
const stop = () => {
  void mock.close().then(() => process.exit(0));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
