/**
 * `agentd`: the runtime as a library and the agent SDK.
 *
 *     import { createRuntime, defineAgent, z } from 'agentd';
 *     const hello = defineAgent({
 *       name: 'hello',
 *       description: 'Greets.',
 *       input: z.object({ name: z.string() }),
 *       async run(ctx) { await ctx.emit('message', { role: 'assistant', content: `Hello, ${ctx.input.name}!` }); },
 *     });
 *     await createRuntime({ agents: [hello] }).listen();
 *
 * `z` is the zod agentd validates with, so an agent file needs nothing else installed.
 */
export { z } from 'zod';
export { AGENT_NAME_PATTERN, defineAgent, isDefinedAgent } from './agents/define-agent.js';
export type { AgentDefinition, DefinedAgent } from './agents/define-agent.js';
export { createRuntime } from './app/runtime.js';
export type { Runtime, RuntimeOptions, RuntimeSetting } from './app/runtime.js';
export { OffloadQueueFullError } from './concurrency/offload-pool.js';
export { EVENT_TYPE_PATTERN, RunFailure } from './domain/index.js';
export type {
  Agent,
  AgentChatRequest,
  AgentContext,
  AgentEventType,
  AgentLlm,
  ChatMessage,
  ChatResult,
  CustomEventType,
  EventType,
  Logger,
  RunFailureCode,
  ToolCall,
  ToolDefinition,
} from './domain/index.js';
