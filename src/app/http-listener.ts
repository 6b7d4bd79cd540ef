import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { CONNECTION_ACK, CONNECTION_MESSAGE, WORKER_ACCEPTING, WORKER_STOPPED_ACCEPTING } from './connection-router.js';

/** The HTTP server as a lifecycle resource, fed by its own port or by the cluster primary. */
export interface HttpListener {
  readonly url: string;
  /** True until close() is called. */
  readonly accepting: boolean;
  /** Stops accepting, closes every connection still open and waits until the server has stopped. Idempotent. */
  close(): Promise<void>;
}

/** Listens on `host:port` (a lone process). */
export function listenOnPort(app: RequestListener, port: number, host: string): Promise<HttpListener> {
  return new Promise<HttpListener>((resolve, reject) => {
    const server = createServer(app);
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const address = server.address() as AddressInfo;
      resolve(new ClosableServer(server, urlOf(address.family === 'IPv6' ? `[${address.address}]` : address.address, address.port)));
    });
  });
}

/**
 * Serves the connections the cluster primary hands this worker (ConnectionRouter): each is
 * acknowledged at once, before anything is read from it, so the primary closes its copy, and a
 * connection this worker never acknowledged is still whole when the primary routes it to another.
 * `port` is the one the primary bound.
 */
export function serveFromPrimary(app: RequestListener, port: number, host: string): HttpListener {
  const server = createServer(app);
  // Starts Node's connection tracking (closeAllConnections, headers and request timeouts), which
  // it otherwise starts when a server listens on its own port.
  server.emit('listening');
  const listener = new ClosableServer(server, urlOf(host.includes(':') ? `[${host}]` : host, port), () => {
    process.off('message', onMessage);
    process.send?.({ type: WORKER_STOPPED_ACCEPTING });
  });
  const onMessage = (raw: unknown, handle: unknown): void => {
    const message = raw as { type?: unknown; id?: unknown } | null;
    if (typeof message !== 'object' || message?.type !== CONNECTION_MESSAGE || handle === undefined) return;
    process.send?.({ type: CONNECTION_ACK, id: message.id });
    server.emit('connection', handle as Socket);
  };
  process.on('message', onMessage);
  process.send?.({ type: WORKER_ACCEPTING });
  return listener;
}

function urlOf(host: string, port: number): string {
  return `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${port}`;
}

class ClosableServer implements HttpListener {
  private stopped: Promise<void> | undefined;

  constructor(
    private readonly server: Server,
    readonly url: string,
    private readonly onClose: () => void = () => undefined,
  ) {}

  get accepting(): boolean {
    return this.stopped === undefined;
  }

  close(): Promise<void> {
    this.stopped ??= new Promise<void>((resolve) => {
      this.onClose();
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    return this.stopped;
  }
}
