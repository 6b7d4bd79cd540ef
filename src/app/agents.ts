import { createChatAgent } from '../agents/chat.js';
import { echoAgent } from '../agents/echo.js';
import { simulateAgent } from '../agents/simulate.js';
import type { OffloadPool } from '../concurrency/offload-pool.js';
import type { Config } from '../config/config.js';
import type { Agent, AgentServicesFactory } from '../domain/index.js';
import { type ChatGateway, LlmGateway, type LlmObserver } from '../llm/llm-gateway.js';
import type { LlmLimiters } from '../llm/llm-limiters.js';
import { modelPatternMatcher } from '../llm/model-patterns.js';
import { ModelRouter, type RoutingObserver } from '../llm/model-router.js';

/** The chat gateway over the configured providers; null without LLM_PROVIDERS. */
export function createGateway(
  llm: Config['llm'],
  limiters: LlmLimiters,
  observers: { readonly routing: RoutingObserver; readonly llm: LlmObserver },
): LlmGateway | null {
  if (llm.providers.length === 0) return null;
  return new LlmGateway({
    providers: llm.providers,
    limiters,
    router: new ModelRouter({
      providers: llm.providers,
      rules: llm.routingRules,
      cacheTtlMs: llm.routingCacheTtlMs,
      observer: observers.routing,
    }),
    timeouts: {
      baseMs: llm.timeoutMs,
      webSearchMs: llm.webSearchTimeoutMs,
      thinkingMs: llm.thinkingTimeoutMs,
      webThinkingMs: llm.webThinkingTimeoutMs,
    },
    idleTimeoutMs: llm.idleTimeoutMs,
    maxRetries: llm.maxRetries,
    isThinkingModel: modelPatternMatcher(llm.thinkingModels),
    observer: observers.llm,
  });
}

/** The built-in agents: `echo`, `simulate`, and `chat` over the gateway (none without LLM_PROVIDERS). */
export function builtInAgents(gateway: ChatGateway | null): Agent[] {
  return gateway === null ? [echoAgent, simulateAgent] : [echoAgent, simulateAgent, createChatAgent(gateway)];
}

/** Each run's `ctx.llm` (the gateway, bound to the run) and `ctx.offload` (the pool, bound to its signal). */
export function agentServices(gateway: ChatGateway | null, pool: OffloadPool): AgentServicesFactory {
  return (run) => ({
    llm: {
      chat: (request) => {
        if (gateway === null) return Promise.reject(new Error('ctx.llm: no LLM provider is configured (LLM_PROVIDERS)'));
        return gateway.chat({
          runId: run.runId,
          agent: run.agent,
          model: request.model === undefined ? run.model : request.model,
          messages: request.messages,
          tools: request.tools,
          webSearch: request.webSearch ?? false,
          signal: run.signal,
          logger: run.logger,
          onDelta: request.onDelta ?? (() => undefined),
        });
      },
    },
    offload: (modulePath, exportName, args) => pool.run(modulePath, exportName, args, run.signal),
  });
}
