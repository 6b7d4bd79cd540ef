import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

/** The SDK as an agent file in a temp folder imports it (from a checkout: `agentd` resolves only inside the package). */
export const SDK_URL = pathToFileURL(join(import.meta.dirname, '../../src/index.ts')).href;

/** CPU work for offload tests: hashing for `ms` milliseconds, a throw, and a task that spins until stopped. */
export const HASH_MODULE = `
import { createHash } from 'node:crypto';
const block = Buffer.alloc(4096, 7);
export function hashFor({ ms }) {
  const until = performance.now() + ms;
  let rounds = 0;
  while (performance.now() < until) {
    createHash('sha256').update(block).digest();
    rounds += 1;
  }
  return { rounds };
}
export function fail({ message }) {
  throw new Error(message);
}
`;

/** Agents written as a user would, in plain .mjs. */
export const AGENT_FILES: Readonly<Record<string, string>> = {
  'hello.mjs': `
import { defineAgent, z } from '${SDK_URL}';
export default defineAgent({
  name: 'hello',
  description: 'Greets by name with a greeting event, then a message.',
  input: z.object({ name: z.string().min(1) }),
  async run(ctx) {
    ctx.logger.info('greeting someone');
    await ctx.emit('greeting', { text: 'Hello, ' + ctx.input.name + '!' });
    await ctx.emit('message', { role: 'assistant', content: 'Hello, ' + ctx.input.name + '!' });
  },
});
`,
  'hasher.mjs': `
import { defineAgent, z } from '${SDK_URL}';
import { hashFor } from './lib/hash.mjs';
export const hasher = defineAgent({
  name: 'hasher',
  description: 'Hashes for 200 ms per step, offloaded or (inline: true) on the event loop.',
  input: z.object({ steps: z.number().int().min(1), inline: z.boolean().default(false) }),
  async run(ctx) {
    for (let step = 0; step < ctx.input.steps && !ctx.signal.aborted; step += 1) {
      const result = ctx.input.inline ? hashFor({ ms: 200 }) : await ctx.offload('lib/hash.mjs', 'hashFor', { ms: 200 });
      await ctx.emit('step', { step, rounds: result.rounds });
      // Between steps other work gets the event loop (emit resolves at once, without a turn of it).
      await new Promise((resolve) => setImmediate(resolve));
    }
  },
});
`,
  'offloader.mjs': `
import { defineAgent, z } from '${SDK_URL}';
export default defineAgent({
  name: 'offloader',
  description: 'Offloads one call and emits its result.',
  input: z.object({ module: z.string().default('lib/hash.mjs'), fn: z.string(), args: z.unknown() }),
  async run(ctx) {
    await ctx.emit('offloading', { fn: ctx.input.fn });
    const result = await ctx.offload(ctx.input.module, ctx.input.fn, ctx.input.args);
    await ctx.emit('message', { role: 'assistant', content: result });
  },
});
`,
  'asker.mjs': `
import { defineAgent, z } from '${SDK_URL}';
export default defineAgent({
  name: 'asker',
  description: 'Asks the model one question.',
  input: z.object({ question: z.string() }),
  async run(ctx) {
    const reply = await ctx.llm.chat({ messages: [{ role: 'user', content: ctx.input.question }] });
    await ctx.emit('message', { role: 'assistant', content: reply.content });
  },
});
`,
  'lib/hash.mjs': HASH_MODULE,
};

/** A temp AGENTS_DIR holding `files` (paths relative to it). */
export async function agentsDir(files: Readonly<Record<string, string>> = AGENT_FILES): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'agentd-agents-'));
  for (const [name, text] of Object.entries(files)) {
    await mkdir(dirname(join(dir, name)), { recursive: true });
    await writeFile(join(dir, name), text);
  }
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}
