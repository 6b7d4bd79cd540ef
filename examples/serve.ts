import { createRuntime } from '../src/index.js';
import { weatherAgent } from './weather-agent.js';

// agentd with the example agent, configured from the environment as `npm start` is:
//   LLM_PROVIDERS='[…]' npx tsx examples/serve.ts
const runtime = createRuntime({ agents: [weatherAgent] });
const { url } = await runtime.listen();
process.stdout.write(`weather agent at ${url}/v1/runs (agent "weather"); Ctrl-C stops\n`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void runtime.close().then(() => process.exit(0)));
}
