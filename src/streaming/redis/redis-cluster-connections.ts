import { createCluster } from 'redis';
import { withDeadline } from '../../concurrency/deadline.js';
import type { RedisClusterNode } from '../../config/redis-cluster-nodes.js';
import {
  CONNECT_TIMEOUT_MS,
  type MessageListener,
  reconnectDelayMs,
  type RedisClient,
  type RedisConnections,
} from './redis-connections.js';
import { keySlot } from './redis-key-slot.js';
import { readMaxClients } from './redis-max-clients.js';
import { readShardStreams } from './redis-read-script.js';

type RedisClusterClient = ReturnType<typeof createCluster>;
type ClusterListener = Parameters<RedisClusterClient['unsubscribe']>[1];

export interface OpenRedisClusterOptions {
  /** Seeds (REDIS_CLUSTER_NODES): any reachable one tells node-redis the shards (CLUSTER SLOTS). */
  readonly nodes: readonly RedisClusterNode[];
  /** Names every connection `agentd:<instanceId>:cluster` (CLIENT LIST on each node shows them). */
  readonly instanceId: string;
  /** Bound on node-redis' command queue of each connection; commands past it are rejected at once. */
  readonly commandsQueueMax: number;
  /** Connection errors once connected (each node's, with its address). */
  readonly onError: (error: unknown) => void;
}

/** How long the first connect (discovery, then every master) may take before start-up gives up. */
const FIRST_CONNECT_DEADLINE_MS = 15_000;
/** How long closing (QUIT on every connection) may take before the connections are destroyed. */
const CLOSE_DEADLINE_MS = 2_000;

/**
 * Opens a Redis Cluster behind the same seam as one server: one command connection per master
 * (node-redis routes each command by its key's slot and follows MOVED/ASK) and one subscriber
 * on one node (classic pub/sub: every node delivers every PUBLISH). Replicas are not read.
 */
export async function openRedisCluster(options: OpenRedisClusterOptions): Promise<RedisConnections> {
  const seeds = options.nodes.map(({ host, port }) => `${host}:${port}`).join(',');
  const cluster = createCluster({
    rootNodes: options.nodes.map(({ host, port }) => ({ socket: { host, port } })),
    useReplicas: false,
    defaults: {
      name: `agentd:${options.instanceId}:cluster`,
      // As on one server: fail at once while a shard is away rather than replay stale writes.
      disableOfflineQueue: true,
      commandsQueueMaxLength: options.commandsQueueMax,
      maintNotifications: 'disabled',
      socket: { connectTimeout: CONNECT_TIMEOUT_MS, reconnectStrategy: (retries: number) => reconnectDelayMs(retries) },
    },
  });
  let connected = false;
  const reconnects = { attempts: 0, ready: 0 };
  const readyAgain = new Set<() => void>();
  const awaitingReady = new WeakSet<RedisClient>();
  // node-redis throws 'error' events without a listener; these are where they are handled:
  // reported once connected, and before that by the rejection of the first connect.
  cluster.on('error', (error: unknown) => {
    if (connected) options.onError(error);
  });
  cluster.on('node-error', (error: unknown, node: { host: string; port: number }) => {
    if (connected) options.onError(new Error(`Redis Cluster node ${node.host}:${node.port}: ${String(error)}`, { cause: error }));
  });
  cluster.on('node-reconnecting', () => {
    reconnects.attempts += 1;
    // node-redis says 'ready' per node only once; watch each reconnecting client for its next one.
    for (const client of clientsOf(cluster)) {
      if (client.isReady || awaitingReady.has(client)) continue;
      awaitingReady.add(client);
      client.once('ready', () => {
        awaitingReady.delete(client);
        reconnects.ready += 1;
        for (const listener of readyAgain) listener();
      });
    }
  });
  try {
    await withDeadline(cluster.connect(), FIRST_CONNECT_DEADLINE_MS, `connecting to the Redis Cluster at ${seeds}`);
  } catch (error) {
    if (cluster.isOpen) await cluster.destroy();
    throw new Error(`cannot connect to the Redis Cluster at ${seeds}`, { cause: error });
  }
  connected = true;
  return clusterConnections(cluster, options, { seeds, reconnects, readyAgain });
}

/** Every connection of the cluster client: each master's, and the subscriber once there is one. */
function clientsOf(cluster: RedisClusterClient): RedisClient[] {
  const clients: RedisClient[] = [];
  for (const master of cluster.masters) if (master.client !== undefined) clients.push(master.client as RedisClient);
  const subscriber = cluster.pubSubNode?.client;
  if (subscriber !== undefined) clients.push(subscriber as RedisClient);
  return clients;
}

/** `items` grouped by the master that owns their key's slot (node-redis' slot map), each group in order. */
function groupByMaster<T>(cluster: RedisClusterClient, items: readonly T[], keyOf: (item: T) => string): T[][] {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const master = cluster.slots[keySlot(keyOf(item))]?.master.address ?? '';
    const group = groups.get(master);
    if (group === undefined) groups.set(master, [item]);
    else group.push(item);
  }
  return [...groups.values()];
}

interface ClusterState {
  readonly seeds: string;
  readonly reconnects: { attempts: number; ready: number };
  readonly readyAgain: Set<() => void>;
}

/** The seam over a connected cluster client. */
function clusterConnections(cluster: RedisClusterClient, options: OpenRedisClusterOptions, state: ClusterState): RedisConnections {
  let inFlight = 0;
  let closed: Promise<void> | undefined;
  const send = (key: string, args: readonly string[]) => cluster.sendCommand<unknown>(key, false, [...args]);
  const byShard = <T>(items: readonly T[], keyOf: (item: T) => string): T[][] => groupByMaster(cluster, items, keyOf);
  const masterClients = () => cluster.masters.map((master) => cluster.nodeClient(master) as unknown as Promise<RedisClient>);
  return {
    commandsQueueMax: options.commandsQueueMax,
    reportError: options.onError,
    counted<T>(command: Promise<T>): Promise<T> {
      inFlight += 1;
      return command.finally(() => {
        inFlight -= 1;
      });
    },
    isReady: () => cluster.masters.length > 0 && cluster.masters.every((master) => master.client?.isReady === true),
    send,
    runScript: (script, keys, argv) => script.run((args) => send(keys[0] ?? '', args), keys, argv, true),
    byShard,
    // XREAD over several slots is refused (CROSSSLOT): one read script per shard, sent together.
    readStreams: (keys, ids, count) => {
      const streams = keys.map((key, index) => [key, ids[index] ?? '0-0'] as const);
      return Promise.all(
        byShard(streams, ([key]) => key).map((part) => readShardStreams((args) => send(part[0]?.[0] ?? '', args), part, count)),
      );
    },
    publish: async (channel, message) => {
      await cluster.publish(channel, message);
    },
    subscribe: (channel, listener) => cluster.subscribe(channel, listener),
    unsubscribe: (channel, listener: MessageListener) => cluster.unsubscribe(channel, listener as ClusterListener),
    onReconnected: (listener) => state.readyAgain.add(listener),
    offReconnected: (listener) => state.readyAgain.delete(listener),
    async maxClients(logger) {
      const values = await Promise.all((await Promise.all(masterClients())).map((client) => readMaxClients(client, logger)));
      return values.some((value) => value === null) ? null : Math.min(...(values as number[]));
    },
    livenessClients() {
      const named: Record<string, RedisClient> = {};
      for (const master of cluster.masters) if (master.client !== undefined) named[master.address] = master.client as RedisClient;
      const subscriber = cluster.pubSubNode;
      if (subscriber !== undefined) named[`subscriber@${subscriber.address}`] = subscriber.client as RedisClient;
      return named;
    },
    connectionCount: () => clientsOf(cluster).filter((client) => client.isReady).length,
    inFlight: () => inFlight,
    reconnects: () => ({ ...state.reconnects }),
    async ping() {
      inFlight += 1;
      try {
        await Promise.all((await Promise.all(masterClients())).map((client) => client.ping()));
      } catch (error) {
        throw new Error(`the Redis Cluster at ${state.seeds} did not answer PING on every shard`, { cause: error });
      } finally {
        inFlight -= 1;
      }
    },
    close() {
      closed ??= (async () => {
        if (!cluster.isOpen) return;
        try {
          await withDeadline(cluster.close(), CLOSE_DEADLINE_MS, 'closing the Redis Cluster connections');
        } catch (error) {
          options.onError(error);
          try {
            cluster.destroy();
          } catch (destroyError) {
            options.onError(destroyError); // connections close already quit; nothing left to free
          }
        }
      })();
      return closed;
    },
  };
}
