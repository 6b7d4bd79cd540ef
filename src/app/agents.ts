import { createChatAgent } from '../agents/chat.js';
import { echoAgent } from '../agents/echo.js';
import { simulateAgent } from '../agents/simulate.js';
import type { Config } from '../config/config.js';
import type { Agent } from '../domain/index.js';
import { LlmGateway, type LlmObserver } from '../llm/llm-gateway.js';
import type { LlmLimiters } from '../llm/llm-limiters.js';
import { modelPatternMatcher } from '../llm/model-patterns.js';
import { ModelRouter, type RoutingObserver } from '../llm/model-router.js';

/** The built-in agents: `echo`, `simulate`, and `chat` over the configured providers (none without LLM_PROVIDERS). */
export function builtInAgents(
  llm: Config['llm'],
  limiters: LlmLimiters,
  observers: { readonly routing: RoutingObserver; readonly llm: LlmObserver },
): Agent[] {
  if (llm.providers.length === 0) return [echoAgent, simulateAgent];
  const gateway = new LlmGateway({
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
  return [echoAgent, simulateAgent, createChatAgent(gateway)];
}
