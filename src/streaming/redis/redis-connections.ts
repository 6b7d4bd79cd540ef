import { createClient } from 'redis';
import type { Logger } from '../../domain/index.js';
import { hostAndPort } from '../../lib/redact-url.js';
import { readMaxClients } from './redis-max-clients.js';
import type { RedisScript } from './redis-script.js';

export type RedisClient = ReturnType<typeof createClient>;

/** A pub/sub message handler (the message text). */
export type MessageListener = (message: string) => void;

/**
 * The one seam between agentd and Redis, one server (`openRedis`) or a Redis Cluster
 * (`openRedisCluster`): the operations the event store, the cancel bus and liveness need, and
 * nothing that tells them which. On one server that is two connections, `commands` (everything
 * but pub/sub, auto-pipelined by node-redis) and `subscriber` (RESP2 pub/sub needs its own); on
 * a cluster one command connection per shard and one subscriber. Nothing else opens a
 * connection, however many runs or listeners there are.
 */
/** One shard's part of a `readStreams`: its streams, and their XREAD reply or the error. */
export type StreamsRead = { readonly keys: readonly string[] } & ({ readonly reply: unknown } | { readonly error: unknown });

export interface RedisConnections {
  /** node-redis' command queue bound per connection: commands beyond it are refused at once. */
  readonly commandsQueueMax: number;
  /** The error handler the connections were opened with, for users that have none of their own. */
  readonly reportError: (error: unknown) => void;
  /** Counts `command` in `inFlight()` until it settles; returns it unchanged. */
  counted<T>(command: Promise<T>): Promise<T>;
  /**
   * Whether commands can go now (on a cluster: some shard's connection is ready; a command for a
   * shard that is not fails at once, so one shard away costs its own part of a batch only).
   */
  isReady(): boolean;
  /** One command, on the connection of the shard that holds `key`. */
  send(key: string, args: readonly string[]): Promise<unknown>;
  /** Runs a script on the shard of `keys[0]`; any other key it touches must live there too (see `byShard`). */
  runScript(script: RedisScript, keys: readonly string[], argv: readonly string[]): Promise<unknown>;
  /** `items` in groups whose keys live on one shard, each in the given order: one group without a cluster. */
  byShard<T>(items: readonly T[], keyOf: (item: T) => string): T[][];
  /**
   * XREAD COUNT `count` of each stream after its id (one command per shard on a cluster): each
   * shard's XREAD reply, or its error (the other shards' replies still count). Rejects only
   * without a cluster, where there is one command.
   */
  readStreams(keys: readonly string[], ids: readonly string[], count: number): Promise<StreamsRead[]>;
  /** PUBLISH (classic pub/sub: a cluster delivers it to subscribers on every node). */
  publish(channel: string, message: string): Promise<void>;
  subscribe(channel: string, listener: MessageListener): Promise<void>;
  unsubscribe(channel: string, listener: MessageListener): Promise<void>;
  /** Calls `listener` whenever a connection is ready again after a reconnect (pub/sub may have lost messages). */
  onReconnected(listener: () => void): void;
  offReconnected(listener: () => void): void;
  /** The smallest `maxclients` over the servers (each shard's), or null when one refuses CONFIG GET. */
  maxClients(logger: Logger): Promise<number | null>;
  /** The connections a liveness probe watches, by name (read again on every probe: a cluster's change). */
  livenessClients(): Readonly<Record<string, RedisClient>>;
  /** Connected and ready connections: 0..2 on one server, 0..shards + 1 on a cluster. */
  connectionCount(): number;
  /** Commands sent through `counted` (or `ping`) and not answered yet. */
  inFlight(): number;
  /** Since opening, over every connection: node-redis' reconnect attempts, and reconnects that became ready (any cause). */
  reconnects(): { readonly attempts: number; readonly ready: number };
  /** PINGs the command connection (every shard's); rejects naming Redis when one does not answer. */
  ping(): Promise<void>;
  /** Quits every connection (destroying one whose QUIT takes over 2 s). Idempotent. */
  close(): Promise<void>;
}

export interface OpenRedisOptions {
  readonly url: string;
  /** Names the connections `agentd:<instanceId>:commands|subscriber` (CLIENT LIST shows them). */
  readonly instanceId: string;
  /** Bound on node-redis' per-connection command queue; commands past it are rejected at once. */
  readonly commandsQueueMax: number;
  /**
   * Connection errors once connected, including every failed reconnect attempt. The attempts of
   * the first connect are not reported: if they all fail, `openRedis` rejects with the last.
   */
  readonly onError: (error: unknown) => void;
}

export const CONNECT_TIMEOUT_MS = 5_000;
const QUIT_TIMEOUT_MS = 2_000;
const BACKOFF_MIN_MS = 50;
const BACKOFF_MAX_MS = 2_000;
/** Attempts before the first connect gives up, so a wrong URL fails start-up instead of hanging it. */
export const FIRST_CONNECT_ATTEMPTS = 5;
const DEFAULT_PORT = 6379;

/** Reconnect delay after `retries` failed attempts: 50 ms doubling to 2 s, plus up to 10% jitter. */
export function reconnectDelayMs(retries: number): number {
  const base = Math.min(BACKOFF_MIN_MS * 2 ** Math.min(retries, 16), BACKOFF_MAX_MS);
  return Math.round(base * (1 + Math.random() * 0.1));
}

/**
 * Opens the command and subscriber connections of an instance and waits until both are ready.
 * Once connected they reconnect forever; a first connect that fails 5 times rejects.
 */
export async function openRedis(options: OpenRedisOptions): Promise<RedisConnections> {
  const reconnects = { attempts: 0, ready: 0 };
  const commands = createNamedClient(options, `agentd:${options.instanceId}:commands`, reconnects);
  const subscriber = createNamedClient(options, `agentd:${options.instanceId}:subscriber`, reconnects);
  const results = await Promise.allSettled([commands.connect(), subscriber.connect()]);
  const failed = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
  if (failed !== undefined) {
    for (const client of [commands, subscriber]) if (client.isOpen) client.destroy();
    // node-redis gives up with a ReconnectStrategyError that wraps the socket's error (ECONNREFUSED, …) as `socketError`.
    const reason = failed.reason as { socketError?: unknown } | undefined;
    throw new Error(`cannot connect to Redis at ${hostAndPort(options.url, DEFAULT_PORT)}`, { cause: reason?.socketError ?? reason });
  }

  let inFlight = 0;
  let closed: Promise<void> | undefined;
  const readyAgain = new Set<() => void>();
  for (const client of [commands, subscriber]) {
    client.on('ready', () => {
      for (const listener of readyAgain) listener();
    });
  }
  const address = hostAndPort(options.url, DEFAULT_PORT);
  const send = (args: readonly string[]) => commands.sendCommand<unknown>([...args]);
  return {
    commandsQueueMax: options.commandsQueueMax,
    reportError: options.onError,
    counted<T>(command: Promise<T>): Promise<T> {
      inFlight += 1;
      return command.finally(() => {
        inFlight -= 1;
      });
    },
    isReady: () => commands.isReady,
    send: (_key, args) => send(args),
    runScript: (script, keys, argv) => script.run(send, keys, argv),
    byShard: (items) => (items.length === 0 ? [] : [[...items]]),
    readStreams: async (keys, ids, count) => [{ keys, reply: await send(['XREAD', 'COUNT', String(count), 'STREAMS', ...keys, ...ids]) }],
    publish: async (channel, message) => {
      await commands.publish(channel, message);
    },
    subscribe: (channel, listener) => subscriber.subscribe(channel, listener),
    unsubscribe: (channel, listener) => subscriber.unsubscribe(channel, listener),
    onReconnected: (listener) => readyAgain.add(listener),
    offReconnected: (listener) => readyAgain.delete(listener),
    maxClients: (logger) => readMaxClients(commands, logger),
    livenessClients: () => ({ commands, subscriber }),
    connectionCount: () => (commands.isReady ? 1 : 0) + (subscriber.isReady ? 1 : 0),
    inFlight: () => inFlight,
    reconnects: () => ({ ...reconnects }),
    async ping() {
      try {
        inFlight += 1;
        await commands.ping();
      } catch (error) {
        throw new Error(`Redis at ${address} did not answer PING`, { cause: error });
      } finally {
        inFlight -= 1;
      }
    },
    close() {
      closed ??= Promise.all([quit(commands, options.onError), quit(subscriber, options.onError)]).then(() => undefined);
      return closed;
    },
  };
}

/** Counts a client's 'reconnecting' events and every 'ready' after its first into `reconnects`. */
function createNamedClient(options: OpenRedisOptions, name: string, reconnects: { attempts: number; ready: number }): RedisClient {
  let everReady = false;
  const client = createClient({
    url: options.url,
    // Sent as CLIENT SETNAME in the handshake of every (re)connect, not once.
    name,
    // Fail at once while disconnected: replaying queued writes minutes later would be stale.
    disableOfflineQueue: true,
    commandsQueueMaxLength: options.commandsQueueMax,
    // Plain Redis has no maintenance notifications; 'auto' would add a handshake command and
    // relaxed per-command timeouts during a maintenance window.
    maintNotifications: 'disabled',
    // No `commandOptions.timeout`: node-redis 5 then arms no per-command timer (6 does by default).
    socket: {
      connectTimeout: CONNECT_TIMEOUT_MS,
      reconnectStrategy: (retries: number, cause: Error) =>
        !everReady && retries >= FIRST_CONNECT_ATTEMPTS ? cause : reconnectDelayMs(retries),
    },
  });
  client.on('ready', () => {
    if (everReady) reconnects.ready += 1;
    everReady = true;
  });
  client.on('reconnecting', () => {
    reconnects.attempts += 1;
  });
  // node-redis throws 'error' events without a listener; this one is where they are handled:
  // reported once connected, and before that by openRedis' rejection when the first connect fails.
  client.on('error', (error: unknown) => {
    if (everReady) options.onError(error);
  });
  return client;
}

/** QUIT, or destroy when not connected or when QUIT takes longer than QUIT_TIMEOUT_MS. */
export async function quit(client: RedisClient, onError: (error: unknown) => void): Promise<void> {
  if (!client.isOpen) return;
  if (!client.isReady) {
    // Nothing can be said to a server we are not connected to; this also stops reconnecting.
    client.destroy();
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), QUIT_TIMEOUT_MS);
  });
  const quitting = client.quit().then(
    () => 'quit' as const,
    (error: unknown) => {
      onError(error);
      return 'failed' as const;
    },
  );
  const outcome = await Promise.race([quitting, timedOut]);
  clearTimeout(timer);
  if (outcome !== 'timeout') return;
  onError(new Error(`Redis QUIT took over ${QUIT_TIMEOUT_MS} ms; destroying the connection`));
  try {
    client.destroy();
  } catch (error) {
    // QUIT already marked the client closed, so node-redis refuses to destroy it (it still
    // rejects the pending QUIT first). Unref its socket so it cannot keep the process alive.
    onError(error);
    client.unref();
  }
  await quitting;
}
