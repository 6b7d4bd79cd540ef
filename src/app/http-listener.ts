import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { CONNECTION_ACK, CONNECTION_MESSAGE, CONNECTION_NACK, WORKER_ACCEPTING, WORKER_STOPPED_ACCEPTING } from './connection-router.js';

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
  let accepting = true;
  const listener = new ClosableServer(server, urlOf(host.includes(':') ? `[${host}]` : host, port), () => {
    accepting = false;
    process.send?.({ type: WORKER_STOPPED_ACCEPTING });
  });
  // For the process's life: a connection the primary sent before it learnt that this worker
  // stopped still arrives, and goes back unread (a NACK) for another worker to serve.
  process.on('message', (raw: unknown, handle: unknown): void => {
    const message = raw as { type?: unknown; id?: unknown } | null;
    if (typeof message !== 'object' || message?.type !== CONNECTION_MESSAGE || handle === undefined) return;
    const socket = handle as Socket;
    if (!accepting) {
      declineUnread(socket);
      process.send?.({ type: CONNECTION_NACK, id: message.id });
      return;
    }
    process.send?.({ type: CONNECTION_ACK, id: message.id });
    server.emit('connection', socket);
  });
  process.send?.({ type: WORKER_ACCEPTING });
  return listener;
}

/**
 * Lets go of a connection without reading from it: Node started reading when it wrapped the
 * handle, but nothing is read before this tick ends, so the request stays whole in the kernel
 * for the primary's copy. Closing this copy does not close the connection.
 */
function declineUnread(socket: Socket): void {
  socket.pause();
  (socket as Socket & { _handle?: { readStop?: () => void } })._handle?.readStop?.();
  socket.destroy();
}

function urlOf(host: string, port: number): string {
  return `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${port}`;
}

/** How long requests under way may take to finish once the server closes. */
const CLOSE_GRACE_MS = 1_000;

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

  /**
   * Stops accepting, closes idle connections, lets requests under way finish for up to
   * CLOSE_GRACE_MS (a request just taken is answered, not reset), then closes what is left
   * (event streams: their clients resume elsewhere with Last-Event-ID).
   */
  close(): Promise<void> {
    this.stopped ??= new Promise<void>((resolve) => {
      this.onClose();
      const cut = setTimeout(() => this.server.closeAllConnections(), CLOSE_GRACE_MS);
      this.server.close(() => {
        clearTimeout(cut);
        resolve();
      });
      this.server.closeIdleConnections();
    });
    return this.stopped;
  }
}
