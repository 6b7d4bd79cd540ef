import { BackgroundLoop } from '../../concurrency/background-loop.js';
import { withDeadline } from '../../concurrency/deadline.js';
import type { RedisClient } from './redis-connections.js';

/** How often each connection is asked for a PING (ms). */
const PROBE_INTERVAL_MS = 1_000;
/** A PING unanswered this long means the connection is dead, whatever the socket says (ms). */
const PROBE_DEADLINE_MS = 2_000;
/** A connection still not ready this long after a reconnect began is torn down and begun again (ms). */
const STUCK_CONNECTING_MS = 5_000;

interface Watched {
  readonly name: string;
  client: RedisClient;
  /** Since when the connection has been open but not ready; null while ready. */
  connectingSinceMs: number | null;
  healing: boolean;
}

/**
 * Notices a half-open Redis connection (the server or a middlebox gone without a FIN or RST,
 * so the socket never errors and node-redis waits forever): PINGs each connection every
 * second and, when one is not answered within 2 s, drops the connection and connects afresh.
 * The subscriber then resubscribes, and its 'ready' makes the readers re-read what pub/sub may
 * have lost. A reconnect that hangs itself (its handshake unanswered) is begun again.
 */
export class RedisLiveness {
  private readonly watched = new Map<string, Watched>();
  private readonly loop: BackgroundLoop;

  /** `clients`: the connections to watch by name, asked again before every round (a cluster's may change). */
  constructor(
    private readonly clients: () => Readonly<Record<string, RedisClient>>,
    private readonly onError: (error: unknown) => void,
  ) {
    this.loop = new BackgroundLoop(() => this.probeAll(), PROBE_INTERVAL_MS, onError);
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  /** One round of probes (tests drive it). */
  async probeAll(): Promise<void> {
    const current = Object.entries(this.clients());
    const names = new Set(current.map(([name]) => name));
    for (const name of this.watched.keys()) if (!names.has(name)) this.watched.delete(name);
    for (const [name, client] of current) {
      const watched = this.watched.get(name);
      if (watched === undefined) this.watched.set(name, { name, client, connectingSinceMs: null, healing: false });
      else if (watched.client !== client) Object.assign(watched, { client, connectingSinceMs: null });
    }
    await Promise.all([...this.watched.values()].map((watched) => this.probe(watched)));
  }

  private async probe(watched: Watched): Promise<void> {
    const { client } = watched;
    if (!client.isOpen || watched.healing) return; // closed on purpose, or already being replaced
    if (!client.isReady) {
      watched.connectingSinceMs ??= Date.now();
      if (Date.now() - watched.connectingSinceMs > STUCK_CONNECTING_MS) await this.reconnect(watched, 'its reconnect hangs');
      return;
    }
    watched.connectingSinceMs = null;
    try {
      await withDeadline(client.sendCommand<unknown>(['PING']), PROBE_DEADLINE_MS, `Redis PING on ${watched.name}`);
    } catch (error) {
      if (!client.isReady || !client.isOpen) return; // it failed on its own; node-redis reconnects
      await this.reconnect(watched, `its PING went unanswered (${error instanceof Error ? error.message : String(error)})`);
    }
  }

  /** Drops the connection (failing what waits on it) and connects afresh; node-redis resubscribes. */
  private async reconnect(watched: Watched, why: string): Promise<void> {
    watched.healing = true;
    try {
      this.onError(new Error(`Redis connection ${watched.name} is dead: ${why}; reconnecting`));
      if (watched.client.isOpen) watched.client.destroy();
      watched.connectingSinceMs = Date.now();
      void watched.client.connect().catch((error: unknown) => this.onError(error)); // settles when ready, or fails for good
    } finally {
      watched.healing = false;
    }
  }
}
