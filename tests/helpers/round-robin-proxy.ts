import { once } from 'node:events';
import { createConnection, createServer, type Socket } from 'node:net';

export interface RoundRobinProxy {
  /** `http://127.0.0.1:<port>` of the proxy. */
  readonly url: string;
  /** The upstream port each connection went to, in the order the connections came. */
  readonly routes: readonly number[];
  close(): Promise<void>;
}

/**
 * A loopback TCP load balancer, as a layer-4 HAProxy or nginx `stream` block would be: each new
 * connection goes to the next upstream port in turn; an upstream that refuses the connection is
 * skipped for the next one (the connection is not lost), and a connection no upstream takes is
 * closed. Nothing is sticky: a client that wants another upstream opens another connection.
 */
export async function startRoundRobinProxy(upstreamPorts: readonly number[], host = '127.0.0.1'): Promise<RoundRobinProxy> {
  const sockets = new Set<Socket>();
  const routes: number[] = [];
  let next = 0;
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined); // a reset on one side closes the other; the client sees it
  };

  /** Connects `client` to the next upstream that accepts, trying each at most once. */
  const forward = (client: Socket, tries: number) => {
    if (tries >= upstreamPorts.length || client.destroyed) {
      client.destroy();
      return;
    }
    const port = upstreamPorts[next % upstreamPorts.length] as number;
    next += 1;
    const upstream = createConnection({ host, port });
    track(upstream);
    let connected = false;
    upstream.once('error', () => {
      if (!connected) forward(client, tries + 1); // refused: the next one
    });
    upstream.once('connect', () => {
      connected = true;
      routes.push(port);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
      client.pipe(upstream).pipe(client);
      client.resume();
    });
  };

  const server = createServer({ pauseOnConnect: true }, (client) => {
    track(client);
    forward(client, 0);
  });
  server.listen(0, host);
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  return {
    url: `http://${host}:${port}`,
    routes,
    async close() {
      for (const socket of sockets) socket.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}
