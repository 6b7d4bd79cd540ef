import { BoundedCache } from '../../lib/bounded-cache.js';
import { withDeadline } from '../../concurrency/deadline.js';
import { type CancelBus, DependencyUnavailableError } from '../../domain/index.js';
import type { RedisConnections } from './redis-connections.js';
import type { RedisKeys } from './redis-keys.js';

export interface RedisCancelBusOptions {
  readonly redis: RedisConnections;
  readonly keys: RedisKeys;
  /** How long a cancel request is remembered for a run that has not started yet; default 3600. */
  readonly ttlSeconds?: number;
  /** A failed subscription or a handler that threw; default: the connections' error handler. */
  readonly onError?: (error: unknown) => void;
}

const DEFAULT_TTL_SECONDS = 3_600;
const COMMAND_DEADLINE_MS = 5_000;
/**
 * How long, and for how many runs at most, requests heard on the channel are remembered for a
 * run that is not registered yet. A run registers right after its admission commits, so the
 * window this covers is that of a cancel racing an admission; seconds are plenty.
 */
const HEARD_TTL_MS = 60_000;
const HEARD_MAX = 10_000;

/**
 * Cancel requests across instances: a key (so a run that starts later still sees the request)
 * and a message on the cancel channel (so the instance running it acts at once). Uses the
 * shared subscriber connection; opens none of its own.
 */
export class RedisCancelBus implements CancelBus {
  private handler: (runId: string) => void = () => undefined;
  private localRuns: () => Iterable<string> = () => [];
  private subscribed = false;
  /** Runs a request was heard for (here or on the channel): see HEARD_TTL_MS. */
  private readonly heard = new BoundedCache<string, true>({ maxEntries: HEARD_MAX, ttlMs: HEARD_TTL_MS });
  private readonly ttlSeconds: number;
  private readonly onError: (error: unknown) => void;

  constructor(private readonly options: RedisCancelBusOptions) {
    this.ttlSeconds = options.ttlSeconds ?? DEFAULT_TTL_SECONDS;
    this.onError = options.onError ?? options.redis.reportError;
  }

  async request(runId: string): Promise<void> {
    const { redis, keys } = this.options;
    try {
      // The key first: a run starting after the message was published still finds it.
      const key = keys.cancelRequested(runId);
      const set = redis.send(key, ['SET', key, '1', 'EX', String(this.ttlSeconds)]);
      await withDeadline(redis.counted(set), COMMAND_DEADLINE_MS, 'Redis SET');
      await withDeadline(redis.counted(redis.publish(keys.cancelChannel, runId)), COMMAND_DEADLINE_MS, 'Redis PUBLISH');
      this.remember(runId);
    } catch (error) {
      throw new DependencyUnavailableError('event stream (Redis)', error);
    }
  }

  onRequest(handler: (runId: string) => void, localRuns: () => Iterable<string>): void {
    this.handler = handler;
    this.localRuns = localRuns;
    this.subscribe();
    // Pub/sub is at-most-once: after the subscriber reconnects, a request published while it
    // was away is still found by its key.
    this.options.redis.onReconnected(this.onReconnected);
  }

  private subscribe(): void {
    if (this.subscribed) return;
    this.subscribed = true;
    this.options.redis.subscribe(this.options.keys.cancelChannel, this.onMessage).catch((error: unknown) => {
      this.subscribed = false; // retried when the subscriber is ready again
      this.onError(error);
    });
  }

  private readonly onReconnected = (): void => {
    this.subscribe();
    for (const runId of this.localRuns()) {
      this.isRequested(runId).then(
        (requested) => {
          if (requested) this.onMessage(runId);
        },
        (error: unknown) => this.onError(error),
      );
    }
  };

  heardBefore(runId: string): boolean {
    return this.heard.has(runId);
  }

  /** Whether the request key of the run is set (after a reconnect, for requests the channel lost). */
  private async isRequested(runId: string): Promise<boolean> {
    const { redis, keys } = this.options;
    const key = keys.cancelRequested(runId);
    return Number(await redis.counted(redis.send(key, ['EXISTS', key]))) > 0;
  }

  private remember(runId: string): void {
    this.heard.set(runId, true);
  }

  private readonly onMessage = (runId: string): void => {
    this.remember(runId);
    try {
      this.handler(runId);
    } catch (error) {
      this.onError(error);
    }
  };
}
