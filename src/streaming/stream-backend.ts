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

/** Cancel requests stay retrievable this long, for a cancel that raced the run's start. */
const CANCEL_KEY_TTL_SECONDS = 3_600;

export interface StreamBackend {
  readonly kind: 'memory' | 'redis';
  readonly store: EventStore;
  readonly cancelBus: CancelBus;
  readonly limits: Readonly<Record<string, Limit>>;
  /** Closes the store, then its connections. Idempotent. */
  close(): Promise<void>;
}

/** The in-process store without REDIS_URL; Redis streams and pub/sub with it. */
export async function openStreamBackend(config: Config, runSlots: number, onError: (error: unknown) => void): Promise<StreamBackend> {
  if (config.redisUrl === null) {
    const store = new MemoryEventStore({ ttlSeconds: config.streamTtlSeconds, onError });
    store.start();
    return { kind: 'memory', store, cancelBus: new LocalCancelBus(), limits: {}, close: () => store.close() };
  }
  const sized = sizeRedis({
    runSlots,
    serverMaxClients: null,
    instances: config.dbInstances,
    ...(config.redisCommandsQueueMax === null ? {} : { commandsQueueMaxOverride: config.redisCommandsQueueMax }),
  });
  const redis = await openRedis({
    url: config.redisUrl,
    instanceId: config.instanceId,
    commandsQueueMax: sized.commandsQueueMax.value,
    onError,
  });
  const keys = new RedisKeys(config.redisKeyPrefix);
  const store = new RedisEventStore({
    redis,
    keys,
    instanceId: config.instanceId,
    maxLen: config.streamMaxLen,
    ttlSeconds: config.streamTtlSeconds,
    onError,
  });
  const cancelBus = new RedisCancelBus({ redis, keys, ttlSeconds: CANCEL_KEY_TTL_SECONDS });
  let closing: Promise<void> | undefined;
  return {
    kind: 'redis',
    store,
    cancelBus,
    limits: { REDIS_CONNECTIONS: sized.connections, REDIS_COMMANDS_QUEUE_MAX: sized.commandsQueueMax },
    close() {
      closing ??= (async () => {
        await store.close();
        await redis.close();
      })();
      return closing;
    },
  };
}
