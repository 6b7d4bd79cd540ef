import { once } from 'node:events';
import { createConnection, createServer, type Socket } from 'node:net';

export interface TcpProxy {
  /** `127.0.0.1:<port>` of the proxy. */
  readonly address: string;
  readonly port: number;
  /** Drops every open connection and refuses new ones: an outage of the target. */
  cut(): void;
  /**
   * Half-open connections: every open connection and every new one stays open but carries
   * nothing more, in either direction, for good (as when a peer vanishes without FIN or RST).
   * `restore()` lets new connections through again; the black-holed ones stay dead.
   */
  blackhole(): void;
  /** Accepts and forwards new connections again. */
  restore(): void;
  close(): Promise<void>;
}

/** Stops forwarding between the two sockets of a connection, keeps both open, and discards what arrives. */
function deaden(client: Socket, upstream: Socket): void {
  client.unpipe(upstream);
  upstream.unpipe(client);
  for (const socket of [client, upstream]) {
    socket.removeAllListeners('data');
    socket.on('data', () => undefined); // read and drop, so nothing reaches the other side
  }
}

/**
 * A loopback TCP proxy to `targetPort`, for outages made without touching the shared server:
 * `cut()` destroys the connections through it and refuses new ones until `restore()`;
 * `blackhole()` makes them half-open.
 */
export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  const pairs = new Set<[Socket, Socket]>();
  let mode: 'up' | 'down' | 'blackhole' = 'up';
  const server = createServer((client) => {
    if (mode === 'down') {
      client.destroy();
      return;
    }
    const upstream = createConnection({ host: targetHost, port: targetPort });
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => {
        sockets.delete(socket);
        pairs.delete(pair);
      });
      socket.on('error', () => undefined); // a cut connection errors; that is the point
    }
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    if (mode === 'blackhole') deaden(client, upstream);
    else client.pipe(upstream).pipe(client);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const cut = () => {
    mode = 'down';
    for (const socket of sockets) socket.destroy();
  };
  return {
    address: `127.0.0.1:${port}`,
    port,
    cut,
    blackhole: () => {
      mode = 'blackhole';
      for (const [client, upstream] of pairs) deaden(client, upstream);
    },
    restore: () => {
      mode = 'up';
    },
    async close() {
      cut();
      server.close();
      await once(server, 'close');
    },
  };
}
