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
  /** The last connection error of the first connect: node-redis' own rejection names no cause. */
  let firstConnectError: unknown;
  const readyAgain = new ReadyAgain();
  // node-redis throws 'error' events without a listener; these are where they are handled:
  // reported once connected, and before that by the rejection of the first connect.
  cluster.on('error', (error: unknown) => {
    if (connected) options.onError(error);
    else firstConnectError = error;
  });
  cluster.on('node-error', (error: unknown, node: { host: string; port: number }) => {
    if (connected) options.onError(new Error(`Redis Cluster node ${node.host}:${node.port}: ${String(error)}`, { cause: error }));
  });
  cluster.on('node-reconnecting', (node: { host: string; port: number }) => {
    readyAgain.attempts += 1;
    for (const client of clientsOf(cluster, `${node.host}:${node.port}`)) readyAgain.watch(client);
  });
  try {
    await withDeadline(cluster.connect(), FIRST_CONNECT_DEADLINE_MS, `connecting to the Redis Cluster at ${seeds}`);
  } catch (error) {
    if (cluster.isOpen) await cluster.destroy();
    // "All the root nodes are unavailable" says less than the socket's error (ECONNREFUSED, …).
    throw new Error(`cannot connect to the Redis Cluster at ${seeds}`, { cause: firstConnectError ?? error });
  }
  connected = true;
  readyAgain.watchReady(clientsOf(cluster));
  return clusterConnections(cluster, options, { seeds, readyAgain });
}

/** Every connection of the cluster client (of the node at `address`, when given): each master's, and the subscriber once there is one. */
function clientsOf(cluster: RedisClusterClient, address?: string): RedisClient[] {
  const clients: RedisClient[] = [];
  for (const master of cluster.masters) {
    if (master.client !== undefined && (address === undefined || master.address === address)) clients.push(master.client as RedisClient);
  }
  const subscriber = cluster.pubSubNode;
  if (subscriber !== undefined && (address === undefined || subscriber.address === address)) clients.push(subscriber.client as RedisClient);
  return clients;
}

/**
 * Each connection's 'ready' after its first, counted and announced (node-redis reports only a
 * node's first): a reconnect of its own, or one the liveness probe forced.
 */
class ReadyAgain {
  readonly listeners = new Set<() => void>();
  attempts = 0;
  ready = 0;
  private readonly watched = new WeakSet<RedisClient>();

  /** Announces every later 'ready' of `client` (one that was ready once: a reconnecting one, or see `watchReady`). */
  watch(client: RedisClient): void {
    if (this.watched.has(client)) return;
    this.watched.add(client);
    client.on('ready', () => {
      this.ready += 1;
      for (const listener of this.listeners) listener();
    });
  }

  /** Watches the clients that are ready now (a new one's first 'ready' is no reconnect). */
  watchReady(clients: readonly RedisClient[]): void {
    for (const client of clients) if (client.isReady) this.watch(client);
  }
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
  readonly readyAgain: ReadyAgain;
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
    isReady: () => cluster.masters.some((master) => master.client?.isReady === true),
    send,
    runScript: (script, keys, argv) => script.run((args) => send(keys[0] ?? '', args), keys, argv, true),
    byShard,
    // XREAD over several slots is refused (CROSSSLOT): one read script per shard, sent together.
    readStreams: (keys, ids, count) => {
      const streams = keys.map((key, index) => [key, ids[index] ?? '0-0'] as const);
      return Promise.all(
        byShard(streams, ([key]) => key).map((part) =>
          readShardStreams((args) => send(part[0]?.[0] ?? '', args), part, count).then(
            (reply) => ({ keys: part.map(([key]) => key), reply }),
            (error: unknown) => ({ keys: part.map(([key]) => key), error }),
          ),
        ),
      );
    },
    publish: async (channel, message) => {
      await cluster.publish(channel, message);
    },
    subscribe: (channel, listener) => cluster.subscribe(channel, listener),
    unsubscribe: (channel, listener: MessageListener) => cluster.unsubscribe(channel, listener as ClusterListener),
    onReconnected: (listener) => state.readyAgain.listeners.add(listener),
    offReconnected: (listener) => state.readyAgain.listeners.delete(listener),
    async maxClients(logger) {
      const values = await Promise.all((await Promise.all(masterClients())).map((client) => readMaxClients(client, logger)));
      return values.some((value) => value === null) ? null : Math.min(...(values as number[]));
    },
    livenessClients() {
      // Asked every second: connections node-redis opened since (the subscriber, a new master) are watched from here.
      state.readyAgain.watchReady(clientsOf(cluster));
      const named: Record<string, RedisClient> = {};
      for (const master of cluster.masters) if (master.client !== undefined) named[master.address] = master.client as RedisClient;
      const subscriber = cluster.pubSubNode;
      if (subscriber !== undefined) named[`subscriber@${subscriber.address}`] = subscriber.client as RedisClient;
      return named;
    },
    connectionCount: () => clientsOf(cluster).filter((client) => client.isReady).length,
    inFlight: () => inFlight,
    reconnects: () => ({ attempts: state.readyAgain.attempts, ready: state.readyAgain.ready }),
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
