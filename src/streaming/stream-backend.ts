import type { Config } from '../config/config.js';
import { type Limit, redisClientsProblem, sizeRedis } from '../concurrency/sizing.js';
import { LocalCancelBus } from './memory/local-cancel-bus.js';
import { type CancelBus, ConfigError, type Logger } from '../domain/index.js';
import type { EventStore } from './event-store.js';
import { MemoryEventStore } from './memory/memory-event-store.js';
import { RedisCancelBus } from './redis/redis-cancel-bus.js';
import { openRedisCluster } from './redis/redis-cluster-connections.js';
import { openRedis, type RedisConnections } from './redis/redis-connections.js';
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
  /** Processes of this instance (WORKERS), each with its own connections. */
  readonly processes: number;
  readonly runSlots: number;
  readonly logger: Logger;
  readonly onError: (error: unknown) => void;
}

/**
 * Stops start-up (ConfigError) when every process of every instance would not fit in the
 * server's maxclients; skipped when the server refuses CONFIG GET.
 */
async function checkMaxClients(redis: RedisConnections, settings: StreamBackendSettings): Promise<void> {
  const serverMaxClients = await redis.maxClients(settings.logger);
  if (serverMaxClients === null) return;
  const cluster = settings.redis.clusterNodes !== undefined;
  const problem = redisClientsProblem({ serverMaxClients, instances: settings.instances, processes: settings.processes, cluster });
  if (problem !== null) throw new ConfigError(problem);
}

/** One Redis server (REDIS_URL) or a Redis Cluster (REDIS_CLUSTER_NODES), behind the same seam. */
function connectRedis(settings: StreamBackendSettings, commandsQueueMax: number): Promise<RedisConnections> {
  const { redis, instanceId, onError } = settings;
  if (redis.clusterNodes !== undefined) return openRedisCluster({ nodes: redis.clusterNodes, instanceId, commandsQueueMax, onError });
  if (redis.url === undefined) throw new Error('connectRedis needs REDIS_URL or REDIS_CLUSTER_NODES');
  return openRedis({ url: redis.url, instanceId, commandsQueueMax, onError });
}

/**
 * The in-process store without REDIS_URL or REDIS_CLUSTER_NODES; Redis streams and pub/sub
 * with either. Connects to Redis; the caller starts the store with `start()`.
 */
export async function openStreamBackend(settings: StreamBackendSettings): Promise<StreamBackend> {
  const { redis: redisSettings, events, instanceId, runSlots, onError } = settings;
  if (redisSettings.url === undefined && redisSettings.clusterNodes === undefined) {
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
    ...(redisSettings.commandsQueueMax === undefined ? {} : { commandsQueueMaxOverride: redisSettings.commandsQueueMax }),
  });
  const redis = await connectRedis(settings, sized.commandsQueueMax.value);
  try {
    await checkMaxClients(redis, settings);
  } catch (error) {
    await redis.close();
    throw error;
  }
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
  const liveness = new RedisLiveness(() => redis.livenessClients(), onError);
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
