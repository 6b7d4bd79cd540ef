import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { createClient } from 'redis';
import { waitFor } from './wait-for.js';

/** A free loopback TCP port (bound once, then released). */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

export interface PrivateRedis {
  readonly url: string;
  /** Runs one command on it (e.g. FLUSHALL: this server is ours alone). */
  command(args: string[]): Promise<unknown>;
  stop(): Promise<void>;
}

/** A client of the redis-server starting on loopback `port`, once it answers PING. */
export async function clientWhenUp(port: number): Promise<ReturnType<typeof createClient>> {
  const client = createClient({ socket: { host: '127.0.0.1', port, reconnectStrategy: () => 50 } });
  client.on('error', () => undefined); // attempts before the server listens; the wait below fails if it never does
  await waitFor(
    async () => {
      try {
        if (!client.isOpen) await client.connect();
        return (await client.ping()) === 'PONG';
      } catch {
        return false;
      }
    },
    { what: `redis-server on port ${port}` },
  );
  return client;
}

/**
 * A Redis server of this test alone, on a free loopback port, for what must not touch the
 * shared one (FLUSHALL, CONFIG SET); `extraArgs` go to redis-server. Stopped with SIGTERM.
 */
export async function startPrivateRedis(extraArgs: readonly string[] = []): Promise<PrivateRedis> {
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...extraArgs];
  const child: ChildProcess = spawn('redis-server', args, { stdio: 'ignore' });
  const url = `redis://127.0.0.1:${port}`;
  const client = await clientWhenUp(port);
  return {
    url,
    command: (args) => client.sendCommand(args),
    async stop() {
      await client.quit().catch(() => undefined);
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await once(child, 'exit');
      }
    },
  };
}
