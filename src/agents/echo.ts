import { z } from 'zod';
import type { Agent } from '../domain/index.js';

/** Emits one `message` whose content is the run's input, and completes. */
export const echoAgent: Agent<unknown> = {
  name: 'echo',
  description: 'Replies with one message whose content is the input.',
  inputSchema: z.unknown(),
  async run(ctx) {
    await ctx.emit('message', { role: 'assistant', content: ctx.input });
  },
};
