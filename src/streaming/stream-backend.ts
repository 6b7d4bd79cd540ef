import type { Config } from '../config/config.js';
import { type Limit, sizeRedis } from '../concurrency/sizing.js';
import { LocalCancelBus } from './memory/local-cancel-bus.js';
import type { CancelBus } from '../domain/index.js';
import type { EventStore } from './event-store.js';
import { MemoryEventStore } from './memory/memory-event-store.js';
import { RedisCancelBus } from './redis/redis-cancel-bus.js';
import { openRedis } from './redis/redis-connections.js';
import { RedisEventStore } from './redis/redis-event-store.js';
import { RedisKeys } from './redis/redis-keys.js';
import { RedisLiveness } from './redis/redis-liveness.js';

/** Cancel requests stay retrievable this long, for a cancel that raced the run's start. */
const CANCEL_KEY_TTL_SECONDS = 3_600;

export interface StreamBackend {
  readonly kind: 'memory' | 'redis';
  readonly store: EventStore;
  readonly cancelBus: CancelBus;
  readonly limits: Readonly<Record<string, Limit>>;
  /** Starts the store's background work; opening starts nothing. Idempotent. */
  start(): void;
  /** Closes the store, then its connections. Idempotent. */
  close(): Promise<void>;
}

/** What the stream backend is opened with: its config sections and this instance's place. */
export interface StreamBackendSettings {
  readonly redis: Config['redis'];
  readonly events: Config['events'];
  readonly instanceId: string;
  /** Instances sharing the Redis server (DB_INSTANCES). */
  readonly instances: number;
  readonly runSlots: number;
  readonly onError: (error: unknown) => void;
}

/**
 * The in-process store without REDIS_URL; Redis streams and pub/sub with it. Connects to Redis;
 * the caller starts the store with `start()`.
 */
export async function openStreamBackend(settings: StreamBackendSettings): Promise<StreamBackend> {
  const { redis: redisSettings, events, instanceId, runSlots, onError } = settings;
  if (redisSettings.url === undefined) {
    const store = new MemoryEventStore({
      ttlSeconds: events.streamTtlSeconds,
      maxLen: events.streamMaxLen,
      maxBytes: events.streamMaxBytes,
      maxEndedBytes: events.streamMemoryMaxBytes,
      onError,
    });
    return {
      kind: 'memory',
      store,
      cancelBus: new LocalCancelBus(),
      limits: {},
      start: () => store.start(),
      close: () => store.close(),
    };
  }
  const sized = sizeRedis({
    runSlots,
    serverMaxClients: null,
    instances: settings.instances,
    ...(redisSettings.commandsQueueMax === undefined ? {} : { commandsQueueMaxOverride: redisSettings.commandsQueueMax }),
  });
  const redis = await openRedis({
    url: redisSettings.url,
    instanceId,
    commandsQueueMax: sized.commandsQueueMax.value,
    onError,
  });
  const keys = new RedisKeys(redisSettings.keyPrefix);
  const store = new RedisEventStore({
    redis,
    keys,
    instanceId,
    maxLen: events.streamMaxLen,
    maxBytes: events.streamMaxBytes,
    ttlSeconds: events.streamTtlSeconds,
    onError,
  });
  const cancelBus = new RedisCancelBus({ redis, keys, ttlSeconds: CANCEL_KEY_TTL_SECONDS });
  const liveness = new RedisLiveness({ commands: redis.commands, subscriber: redis.subscriber }, onError);
  let closing: Promise<void> | undefined;
  return {
    kind: 'redis',
    store,
    cancelBus,
    limits: { REDIS_CONNECTIONS: sized.connections, REDIS_COMMANDS_QUEUE_MAX: sized.commandsQueueMax },
    start() {
      store.start();
      liveness.start();
    },
    close() {
      closing ??= (async () => {
        await liveness.stop();
        await store.close();
        await redis.close();
      })();
      return closing;
    },
  };
}
