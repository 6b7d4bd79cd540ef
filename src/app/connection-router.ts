import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Logger } from '../domain/index.js';

/** Primary → worker: a connection to serve, sent with its socket. */
export const CONNECTION_MESSAGE = 'agentd:connection';
/** Worker → primary: connection `id` arrived; the primary closes its copy of the socket. */
export const CONNECTION_ACK = 'agentd:connection:ack';
/** Worker → primary: connection `id` arrived after it stopped; it read nothing of it: route it to another. */
export const CONNECTION_NACK = 'agentd:connection:nack';
/** Worker → primary: its HTTP server is up; send it connections. */
export const WORKER_ACCEPTING = 'agentd:connection:accepting';
/** Worker → primary: it stopped serving; send it no more connections. */
export const WORKER_STOPPED_ACCEPTING = 'agentd:connection:stopped';

/** Connections held while no worker accepts (all restarting); the next one is closed at once. */
const MAX_WAITING = 1024;

/** What the router needs of a cluster worker: its IPC channel. */
export interface RoutedWorker {
  readonly id: number;
  send(message: unknown, handle: Socket, options: { keepOpen: boolean }, callback: (error: Error | null) => void): boolean;
  isConnected(): boolean;
}

interface Peer {
  readonly worker: RoutedWorker;
  accepting: boolean;
  /** Connections sent to this worker that it has not acknowledged, by id: the primary still holds each socket. */
  readonly inFlight: Map<number, Socket>;
}

/**
 * The cluster primary's listener, in place of node:cluster's round-robin. node:cluster hands a
 * worker each connection's handle and closes its own copy only when the worker answers; a worker
 * that dies first never answers, so that connection stays open in the primary and its client
 * waits until its own timeout. Here the primary keeps its copy (`keepOpen`) until the worker
 * acknowledges it, and a worker that exits or whose channel breaks gets no more connections:
 * those it had not acknowledged go to the next worker. The primary never reads from a socket
 * (`pauseOnConnect`), so a connection a worker never acknowledged is whole for the next one.
 */
export class ConnectionRouter {
  private readonly server: Server;
  private readonly peers = new Map<number, Peer>();
  private readonly waiting: Socket[] = [];
  private next = 0;
  private sequence = 0;

  constructor(private readonly logger: Logger) {
    this.server = createServer({ pauseOnConnect: true }, (socket) => this.route(socket));
  }

  /** Binds `host:port` (0: any free port); resolves with the port bound. */
  async listen(port: number, host: string): Promise<number> {
    this.server.listen(port, host);
    await once(this.server, 'listening');
    // An accept that fails later (EMFILE, ENOBUFS) is logged; unheard, it would end the primary and every worker with it.
    this.server.on('error', (error) => this.logger.warn('the listening socket failed to accept a connection', { error }));
    return (this.server.address() as AddressInfo).port;
  }

  /** Follows a newly forked worker; it gets connections once it says it accepts them. */
  add(worker: RoutedWorker): void {
    this.peers.set(worker.id, { worker, accepting: false, inFlight: new Map() });
  }

  /** Handles a message from `worker`; other messages are ignored. */
  onMessage(worker: RoutedWorker, raw: unknown): void {
    const peer = this.peers.get(worker.id);
    if (peer === undefined || typeof raw !== 'object' || raw === null) return;
    const message = raw as { type?: unknown; id?: unknown };
    if (message.type === CONNECTION_ACK && typeof message.id === 'number') {
      peer.inFlight.get(message.id)?.destroy(); // the primary's copy only: the worker's stays open
      peer.inFlight.delete(message.id);
    } else if (message.type === CONNECTION_NACK && typeof message.id === 'number') {
      const socket = peer.inFlight.get(message.id);
      peer.inFlight.delete(message.id);
      if (socket !== undefined) this.route(socket);
    } else if (message.type === WORKER_ACCEPTING) {
      peer.accepting = true;
      this.flushWaiting();
    } else if (message.type === WORKER_STOPPED_ACCEPTING) {
      peer.accepting = false;
    }
  }

  /** Stops routing to `worker` (it exited or its channel broke) and routes its unacknowledged connections again. */
  remove(worker: RoutedWorker): void {
    const peer = this.peers.get(worker.id);
    if (peer === undefined) return;
    this.peers.delete(worker.id);
    if (peer.inFlight.size > 0)
      this.logger.warn('worker left with connections it had not taken; routing them on', { connections: peer.inFlight.size });
    for (const socket of peer.inFlight.values()) this.route(socket);
  }

  /** Stops accepting connections and closes those still waiting for a worker. */
  close(): void {
    this.server.close();
    for (const socket of this.waiting.splice(0)) socket.destroy();
    for (const peer of this.peers.values()) for (const socket of peer.inFlight.values()) socket.destroy();
  }

  private route(socket: Socket): void {
    if (socket.listenerCount('error') === 0) socket.on('error', () => socket.destroy()); // a client reset while waiting; nothing to answer
    if (socket.destroyed) return;
    const peer = this.pick();
    if (peer === undefined) {
      if (this.waiting.length >= MAX_WAITING || !this.server.listening) socket.destroy();
      else this.waiting.push(socket);
      return;
    }
    const id = ++this.sequence;
    peer.inFlight.set(id, socket);
    // false from send() means its queue is long, not that it failed: the message still goes.
    peer.worker.send({ type: CONNECTION_MESSAGE, id }, socket, { keepOpen: true }, (error) => {
      if (error !== null) this.lost(peer, error);
    });
  }

  /** The next worker that accepts connections and whose channel is open, round-robin. */
  private pick(): Peer | undefined {
    const peers = [...this.peers.values()];
    for (let i = 0; i < peers.length; i += 1) {
      const peer = peers[(this.next + i) % peers.length];
      if (peer !== undefined && peer.accepting && peer.worker.isConnected()) {
        this.next = (this.next + i + 1) % peers.length;
        return peer;
      }
    }
    return undefined;
  }

  private lost({ worker }: Peer, error: unknown): void {
    if (!this.peers.has(worker.id)) return;
    this.logger.warn('could not hand a connection to a worker; routing to the others', { worker_id: worker.id, error });
    this.remove(worker);
  }

  private flushWaiting(): void {
    for (const socket of this.waiting.splice(0)) this.route(socket);
  }
}
