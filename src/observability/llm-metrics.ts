import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { FairSemaphore } from '../concurrency/fair-semaphore.js';
import type { LlmObserver } from '../llm/llm-gateway.js';
import type { LlmLimiters } from '../llm/llm-limiters.js';
import type { RoutingObserver } from '../llm/model-router.js';
import { boundChildren } from './collected-metrics.js';

const FIRST_TOKEN_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60];
const LLM_DURATION_BUCKETS = [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600];

/**
 * LLM requests by provider and outcome, retries, time to first token and duration; routing
 * cache use; and the in-flight, limit and queue of the global and every provider limiter.
 */
export function llmMetrics(registry: Registry, limiters: LlmLimiters): { observer: LlmObserver; routing: RoutingObserver } {
  limiterGauges(registry, limiters);
  return { observer: llmRequestMetrics(registry), routing: routingMetrics(registry) };
}

function llmRequestMetrics(registry: Registry): LlmObserver {
  const requests = new Counter({
    name: 'agentd_llm_requests_total',
    help: 'LLM requests by provider and outcome (ok, provider_error, provider_timeout, cancelled, error).',
    labelNames: ['provider', 'outcome'],
    registers: [registry],
  });
  const retries = new Counter({
    name: 'agentd_llm_retries_total',
    help: 'LLM request attempts retried after a 429, a 5xx or a connection failure before the first byte.',
    labelNames: ['provider'],
    registers: [registry],
  });
  const firstToken = new Histogram({
    name: 'agentd_llm_time_to_first_token_seconds',
    help: 'Time from sending an LLM request (its permits held) to the first piece of its reply, retries included.',
    labelNames: ['provider'],
    buckets: FIRST_TOKEN_BUCKETS,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'agentd_llm_request_duration_seconds',
    help: 'Time from sending an LLM request (its permits held) to its end, retries included, by outcome.',
    labelNames: ['provider', 'outcome'],
    buckets: LLM_DURATION_BUCKETS,
    registers: [registry],
  });
  const requestsOf = boundChildren((provider, outcome) => requests.labels({ provider, outcome }));
  const durationOf = boundChildren((provider, outcome) => duration.labels({ provider, outcome }));
  return {
    retried: (provider) => retries.inc({ provider }),
    requestEnded(provider, outcome, firstDeltaMs, durationMs) {
      requestsOf(provider, outcome).inc();
      if (firstDeltaMs !== null) firstToken.observe({ provider }, firstDeltaMs / 1000);
      if (durationMs !== null) durationOf(provider, outcome).observe(durationMs / 1000);
    },
  };
}

/** Counts model routing decisions served from the cache and computed. */
function routingMetrics(registry: Registry): RoutingObserver {
  const cacheHits = new Counter({
    name: 'agentd_routing_cache_hits_total',
    help: 'Model routing decisions served from the cache.',
    registers: [registry],
  });
  const cacheMisses = new Counter({
    name: 'agentd_routing_cache_misses_total',
    help: 'Model routing decisions computed from LLM_ROUTING_RULES.',
    registers: [registry],
  });
  return { cacheHit: () => cacheHits.inc(), cacheMiss: () => cacheMisses.inc() };
}

/** In-flight, limit and queue of the global and every provider LLM limiter, labelled by scope and provider. */
function limiterGauges(registry: Registry, llm: LlmLimiters): void {
  const gauge = (name: string, help: string, read: (semaphore: FairSemaphore) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['scope', 'provider'],
      registers: [registry],
      collect() {
        this.set({ scope: 'global' }, read(llm.global));
        for (const [provider, semaphore] of llm.providers) this.set({ scope: 'provider', provider }, read(semaphore));
      },
    });
  gauge('agentd_llm_in_flight', 'LLM requests holding a permit.', (s) => s.inUse);
  gauge('agentd_llm_limit', 'LLM requests allowed in flight (GLOBAL_MAX_INFLIGHT, max_in_flight).', (s) => s.capacity);
  gauge('agentd_llm_queued', 'LLM requests waiting for a permit.', (s) => s.queued);
}
