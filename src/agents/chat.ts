import { z } from 'zod';
import type { ChatGateway } from '../llm/llm-gateway.js';
import type { Agent } from '../domain/index.js';

const MAX_MESSAGES = 500;
const MAX_CONTENT_CHARS = 200_000;

const chatInput = z
  .object({
    messages: z
      .array(z.object({ role: z.enum(['system', 'user', 'assistant']), content: z.string().max(MAX_CONTENT_CHARS) }).strict())
      .min(1)
      .max(MAX_MESSAGES),
    web_search: z.boolean().default(false),
  })
  .strict();

export type ChatInput = z.output<typeof chatInput>;

/**
 * The `chat` agent: sends the conversation to an OpenAI-compatible provider (the run's
 * `model`, or `auto` routing), streams each delta as a `token` event `{text}`, and ends with
 * one `message` `{role: "assistant", content}` holding the whole reply.
 */
export function createChatAgent(gateway: ChatGateway): Agent<ChatInput> {
  return {
    name: 'chat',
    description:
      'Streams a chat completion from an OpenAI-compatible provider: `token` events as the reply arrives, then one `message` with the whole reply. `web_search` asks for a web-search capable route and its longer timeout.',
    inputSchema: chatInput,
    async run(ctx) {
      const result = await gateway.chat({
        runId: ctx.runId,
        agent: 'chat',
        model: ctx.model,
        messages: ctx.input.messages,
        webSearch: ctx.input.web_search,
        signal: ctx.signal,
        logger: ctx.logger,
        // The gateway reads the provider's stream without waiting for its callback: deltas are
        // small and come at the provider's pace, far below what the run's backlog bound holds.
        onDelta: (text) => void ctx.emit('token', { text }),
      });
      await ctx.emit('message', { role: 'assistant', content: result.content });
    },
  };
}
