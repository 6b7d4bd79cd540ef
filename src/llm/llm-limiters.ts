import { acquirePermit } from '../concurrency/acquire-permit.js';
import { FairSemaphore, type Permit, QueueFullError, QueueTimeoutError } from '../concurrency/fair-semaphore.js';
import { ProviderError, ProviderTimeoutError } from './errors.js';

/** Both permits of one LLM request; `release()` is idempotent and gives them back in reverse order. */
export interface LlmLease {
  /** `<runId>` for a run's first concurrent request, `<runId>#<n>` for the n-th more. */
  readonly holder: string;
  release(): void;
}

/** One limiter as `/v1/admin/capacity` shows it. */
export interface LimiterView {
  readonly limit: number;
  readonly in_use: number;
  readonly queued: number;
  readonly queue_max: number;
  readonly holders: string[];
  readonly waiting: string[];
}

export interface LlmLimitersOptions {
  /** GLOBAL_MAX_INFLIGHT. */
  readonly globalLimit: number;
  /** max_in_flight by provider name. */
  readonly providers: ReadonlyMap<string, number>;
  /** Requests that may wait at each limiter. */
  readonly queueMax: number;
  /** Longest wait for a permit before the request fails provider_timeout. */
  readonly queueTimeoutMs: number;
}

/**
 * The in-flight limits of LLM requests: one global FairSemaphore (GLOBAL_MAX_INFLIGHT) and
 * one per provider (max_in_flight). A request takes the global permit, then its provider's,
 * always in that order, and gives them back in reverse. Waiters queue round-robin by run.
 */
export class LlmLimiters {
  readonly global: FairSemaphore;
  readonly providers: ReadonlyMap<string, FairSemaphore>;
  /** Request numbers in use per run, to name concurrent requests of one run apart. */
  private readonly numbers = new Map<string, Set<number>>();

  constructor(options: LlmLimitersOptions) {
    const semaphore = (capacity: number) =>
      new FairSemaphore({ capacity, queueMax: options.queueMax, queueTimeoutMs: options.queueTimeoutMs });
    this.global = semaphore(options.globalLimit);
    this.providers = new Map([...options.providers].map(([name, limit]) => [name, semaphore(limit)]));
  }

  /**
   * Takes the global permit, then the provider's, for a request of `runId`. Rejects with
   * ProviderError (queue full), ProviderTimeoutError (waited too long) or the signal's reason;
   * nothing is held after a rejection.
   */
  async lease(runId: string, provider: string, signal: AbortSignal): Promise<LlmLease> {
    const providerLimiter = this.providers.get(provider);
    if (providerLimiter === undefined) throw new Error(`no limiter for provider "${provider}"`);
    const number = this.takeNumber(runId);
    const holder = number === 0 ? runId : `${runId}#${number}`;
    let global: Permit | undefined;
    let own: Permit | undefined;
    try {
      global = await this.take(this.global, holder, runId, signal, provider, 'GLOBAL_MAX_INFLIGHT');
      own = await this.take(providerLimiter, holder, runId, signal, provider, 'its max_in_flight');
    } catch (error) {
      global?.release();
      this.giveNumber(runId, number);
      throw error;
    }
    const permits = { global, own };
    let released = false;
    return {
      holder,
      release: () => {
        if (released) return;
        released = true;
        permits.own.release();
        permits.global.release();
        this.giveNumber(runId, number);
      },
    };
  }

  private async take(
    semaphore: FairSemaphore,
    holder: string,
    runId: string,
    signal: AbortSignal,
    provider: string,
    limitName: string,
  ): Promise<Permit> {
    try {
      return await acquirePermit(semaphore, holder, runId, signal);
    } catch (error) {
      if (error instanceof QueueFullError) {
        throw new ProviderError(
          provider,
          `cannot take the request: ${semaphore.queued} requests already wait for ${limitName} (${semaphore.capacity} in flight)`,
        );
      }
      if (error instanceof QueueTimeoutError) {
        throw new ProviderTimeoutError(
          provider,
          `had no free request slot within ${error.waitedMs} ms (${limitName} is ${semaphore.capacity})`,
        );
      }
      throw error;
    }
  }

  private takeNumber(runId: string): number {
    let used = this.numbers.get(runId);
    if (used === undefined) {
      used = new Set();
      this.numbers.set(runId, used);
    }
    let number = 0;
    while (used.has(number)) number += 1;
    used.add(number);
    return number;
  }

  private giveNumber(runId: string, number: number): void {
    const used = this.numbers.get(runId);
    used?.delete(number);
    if (used?.size === 0) this.numbers.delete(runId);
  }

  /** The `llm` section of `/v1/admin/capacity`. */
  snapshot(): { global: LimiterView; providers: Record<string, LimiterView> } {
    return {
      global: view(this.global),
      providers: Object.fromEntries([...this.providers].map(([name, semaphore]) => [name, view(semaphore)])),
    };
  }
}

function view(semaphore: FairSemaphore): LimiterView {
  return {
    limit: semaphore.capacity,
    in_use: semaphore.inUse,
    queued: semaphore.queued,
    queue_max: semaphore.queueMax,
    holders: semaphore.holders(),
    waiting: semaphore.waiters(),
  };
}
