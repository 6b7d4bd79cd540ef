import { setTimeout as sleep } from 'node:timers/promises';
import type { LlmProviderConfig } from '../config/llm-providers.js';
import type { ChatResult, Logger, ToolDefinition } from '../domain/index.js';
import { ProviderError, ProviderTimeoutError } from './errors.js';
import type { LlmLease, LlmLimiters } from './llm-limiters.js';
import type { ModelRouter } from './model-router.js';
import { type ChatMessage, streamCompletion } from './openai-stream.js';
import { type LlmTimeouts, type RequestTimeout, selectTimeout } from './request-timeout.js';
import { decideRetry } from './retry-policy.js';

export interface ChatRequest {
  /** Names the permits of the request (`<runId>`, `<runId>#<n>`). */
  readonly runId: string;
  /** The asking agent; routing rules may match on it. */
  readonly agent: string;
  /** An explicit model, or null / `auto` for LLM_ROUTING_RULES. */
  readonly model: string | null;
  readonly messages: readonly ChatMessage[];
  /** Offered to the model (OpenAI `tools`); omitted when none. */
  readonly tools?: readonly ToolDefinition[];
  readonly webSearch: boolean;
  /** The run's signal: cancel, run timeout and shutdown stop the request and its retries. */
  readonly signal: AbortSignal;
  /** Called with each piece of the reply as it streams in. */
  readonly onDelta: (text: string) => void;
  readonly logger?: Logger;
}

export type { ChatResult } from '../domain/index.js';

/** How an LLM request ended: answered, failed or timed out at the provider (or its limiter), cancelled by its run, or another error. */
export type LlmOutcome = 'ok' | 'provider_error' | 'provider_timeout' | 'cancelled' | 'error';

/** Counts LLM requests (metrics); kept narrow so the gateway knows nothing of prom-client. */
export interface LlmObserver {
  /** An attempt failed before its first byte and the request will try again. */
  retried(provider: string): void;
  /**
   * A request routed to `provider` ended. `firstDeltaMs` (to the first piece of the reply) and
   * `durationMs` run from when it held its permits; null when it got none (or no reply came).
   */
  requestEnded(provider: string, outcome: LlmOutcome, firstDeltaMs: number | null, durationMs: number | null): void;
}

const NO_OBSERVER: LlmObserver = { retried: () => undefined, requestEnded: () => undefined };

/** What agents need of the gateway (a seam for tests). */
export interface ChatGateway {
  chat(request: ChatRequest): Promise<ChatResult>;
}

export interface LlmGatewayOptions {
  readonly providers: readonly LlmProviderConfig[];
  readonly limiters: LlmLimiters;
  readonly router: ModelRouter;
  readonly timeouts: LlmTimeouts;
  readonly idleTimeoutMs: number;
  readonly maxRetries: number;
  readonly isThinkingModel: (model: string) => boolean;
  readonly fetch?: typeof fetch;
  readonly random?: () => number;
  /** Default: counts nothing. */
  readonly observer?: LlmObserver;
}

/**
 * Streaming chat completions against the configured OpenAI-compatible providers: routes the
 * model, holds a global and a provider permit for the whole request (released on every
 * path), bounds it by the timeout of its type and the run's signal, and retries 429 / 5xx /
 * connection failures with backoff, only before the first streamed byte.
 */
export class LlmGateway implements ChatGateway {
  private readonly providers: ReadonlyMap<string, LlmProviderConfig>;
  private readonly fetch: typeof fetch;
  private readonly random: () => number;
  private readonly observer: LlmObserver;

  constructor(private readonly options: LlmGatewayOptions) {
    this.providers = new Map(options.providers.map((p) => [p.name, p]));
    this.fetch = options.fetch ?? globalThis.fetch;
    this.random = options.random ?? Math.random;
    this.observer = options.observer ?? NO_OBSERVER;
  }

  async chat(request: ChatRequest): Promise<ChatResult> {
    const target = this.options.router.resolve(request.model, { webSearch: request.webSearch, agent: request.agent });
    const provider = this.providers.get(target.provider);
    if (provider === undefined) throw new Error(`routed to unknown provider "${target.provider}"`);
    const timeout = selectTimeout(this.options.timeouts, {
      webSearch: request.webSearch,
      thinking: this.options.isThinkingModel(target.model),
    });
    let lease: LlmLease;
    try {
      lease = await this.options.limiters.lease(request.runId, provider.name, request.signal);
    } catch (error) {
      this.observer.requestEnded(provider.name, outcomeOf(error, request.signal), null, null);
      throw error;
    }
    // The request's own deadline starts once it holds its permits and covers every attempt.
    const timing = new RequestTiming();
    let outcome: LlmOutcome = 'ok';
    const deadline = new AbortController();
    const timer = setTimeout(
      () => deadline.abort(new ProviderTimeoutError(provider.name, `did not finish within ${timeout.timeoutMs} ms (${timeout.setting})`)),
      timeout.timeoutMs,
    );
    request.logger?.debug('llm request', {
      provider: provider.name,
      model: target.model,
      holder: lease.holder,
      timeout_ms: timeout.timeoutMs,
    });
    try {
      const signal = AbortSignal.any([request.signal, deadline.signal]);
      return await this.withRetries({ ...request, onDelta: timing.noteFirst(request.onDelta) }, provider, target.model, timeout, signal);
    } catch (error) {
      outcome = outcomeOf(error, request.signal);
      // Not the message: a provider's error text may quote the run's messages back.
      if (error instanceof ProviderError || error instanceof ProviderTimeoutError) {
        request.logger?.warn('llm request failed', {
          provider: provider.name,
          model: target.model,
          ...(error instanceof ProviderError && error.status !== undefined ? { status: error.status } : {}),
          code: error.runErrorCode,
        });
      }
      throw error;
    } finally {
      clearTimeout(timer);
      lease.release();
      this.observer.requestEnded(provider.name, outcome, timing.firstDeltaMs, timing.elapsedMs());
    }
  }

  /** Attempts until one succeeds, one fails for good, the retries run out or the deadline is too near. */
  private async withRetries(
    request: ChatRequest,
    provider: LlmProviderConfig,
    model: string,
    timeout: RequestTimeout,
    signal: AbortSignal,
  ): Promise<ChatResult> {
    const deadlineMs = Date.now() + timeout.timeoutMs;
    const body = {
      model,
      messages: request.messages,
      stream: true,
      ...(request.tools !== undefined && request.tools.length > 0 ? { tools: request.tools } : {}),
      ...(request.webSearch ? { web_search_options: {} } : {}),
    };
    for (let retries = 0; ; retries += 1) {
      try {
        const result = await streamCompletion({
          fetch: this.fetch,
          provider,
          body,
          signal,
          idleTimeoutMs: this.options.idleTimeoutMs,
          onDelta: request.onDelta,
        });
        return { provider: provider.name, model, ...result, attempts: retries + 1 };
      } catch (error) {
        if (!(error instanceof ProviderError) || !error.retryable) throw error;
        const decision = decideRetry({
          retriesSoFar: retries,
          maxRetries: this.options.maxRetries,
          retryAfterMs: error.retryAfterMs,
          nowMs: Date.now(),
          deadlineMs,
          random: this.random,
        });
        if (!decision.retry) {
          const why =
            decision.reason === 'exhausted'
              ? `after ${retries + 1} attempts (LLM_MAX_RETRIES)`
              : `with no time left to retry before ${timeout.setting}`;
          throw new ProviderError(provider.name, `${error.detail}; gave up ${why}`, {
            status: error.status,
            logDetail: `${error.logDetail}; gave up ${why}`,
          });
        }
        request.logger?.info('llm request retried', { provider: provider.name, status: error.status, delay_ms: decision.delayMs });
        this.observer.retried(provider.name);
        await sleepOrAbort(decision.delayMs, signal);
      }
    }
  }
}

/** Times a request from when it holds its permits: to the first piece of its reply, and to its end (ms). */
class RequestTiming {
  private readonly startedAt = performance.now();
  /** Null until the first piece of the reply came. */
  firstDeltaMs: number | null = null;

  /** `onDelta`, noting when it is first called. */
  noteFirst(onDelta: (text: string) => void): (text: string) => void {
    return (text) => {
      this.firstDeltaMs ??= performance.now() - this.startedAt;
      onDelta(text);
    };
  }

  elapsedMs(): number {
    return performance.now() - this.startedAt;
  }
}

/** The outcome a request that threw `error` counts as; the run's own abort (cancel, timeout, shutdown) is `cancelled`. */
function outcomeOf(error: unknown, runSignal: AbortSignal): LlmOutcome {
  if (runSignal.aborted) return 'cancelled';
  if (error instanceof ProviderTimeoutError) return 'provider_timeout';
  if (error instanceof ProviderError) return 'provider_error';
  return 'error';
}

/** Waits, or rejects with the signal's own reason (not node's AbortError) when it aborts. */
async function sleepOrAbort(ms: number, signal: AbortSignal): Promise<void> {
  try {
    await sleep(ms, undefined, { signal });
  } catch (error) {
    if (signal.aborted) throw signal.reason;
    throw error;
  }
}
