import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createClient } from 'redis';
import { clientWhenUp, freePort } from './private-redis.js';
import { waitFor } from './wait-for.js';

const run = promisify(execFile);

export type ClusterNodeClient = ReturnType<typeof createClient>;

export interface TestRedisCluster {
  /** `127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3`, as REDIS_CLUSTER_NODES takes it. */
  readonly seeds: string;
  readonly ports: readonly number[];
  /** A plain client per node (no cluster routing), to count keys and clients on each shard. */
  readonly nodes: readonly ClusterNodeClient[];
  /** Freezes node `index` (SIGSTOP): its connections stay open and nothing answers, as with a half-open link. */
  pause(index: number): void;
  /** Lets a paused node go on (SIGCONT). */
  resume(index: number): void;
  /** Kills every server, closes the clients and removes the directory. Idempotent; never throws. */
  stop(): Promise<void>;
}

/**
 * A 3-master Redis Cluster of this test alone: redis-server processes on free loopback ports
 * with their nodes files in a temp dir, joined by `redis-cli --cluster create`, returned once
 * every node reports `cluster_state:ok`. Whatever fails on the way, what was started is stopped.
 */
export async function startRedisCluster(masters = 3): Promise<TestRedisCluster> {
  await requireRedis7();
  const dir = await mkdtemp(join(tmpdir(), 'agentd-cluster-'));
  const children: ChildProcess[] = [];
  const nodes: ClusterNodeClient[] = [];
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      for (const client of nodes) if (client.isOpen) client.destroy();
      await Promise.all(children.map(killed));
      await rm(dir, { recursive: true, force: true });
    })();
    return stopped;
  };
  try {
    const ports: number[] = [];
    for (let i = 0; i < masters; i++) ports.push(await freePort());
    for (const port of ports) children.push(startNode(port, dir));
    for (const port of ports) nodes.push(await clientWhenUp(port));
    const addresses = ports.map((port) => `127.0.0.1:${port}`);
    await run('redis-cli', ['--cluster', 'create', ...addresses, '--cluster-replicas', '0', '--cluster-yes'], { timeout: 30_000 });
    for (const node of nodes) {
      await waitFor(async () => (await node.sendCommand<string>(['CLUSTER', 'INFO'])).includes('cluster_state:ok'), {
        what: 'cluster_state:ok on every node',
        timeoutMs: 30_000,
      });
    }
    const signal = (index: number, name: NodeJS.Signals) => {
      const child = children[index];
      if (child === undefined) throw new Error(`no node ${index}`);
      child.kill(name);
    };
    return {
      seeds: addresses.join(','),
      ports,
      nodes,
      pause: (index) => signal(index, 'SIGSTOP'),
      resume: (index) => signal(index, 'SIGCONT'),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** The cluster scripts need `allow-cross-slot-keys` (Redis 7): an older redis-server fails here, saying so. */
async function requireRedis7(): Promise<void> {
  const { stdout } = await run('redis-server', ['--version']);
  const major = Number(/v=(\d+)\./.exec(stdout)?.[1]);
  if (!(major >= 7)) throw new Error(`the Redis Cluster tests need redis-server 7 or later; found: ${stdout.trim()}`);
}

function startNode(port: number, dir: string): ChildProcess {
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--cluster-enabled',
    'yes',
    '--cluster-config-file',
    join(dir, `nodes-${port}.conf`),
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    'no',
    '--daemonize',
    'no',
  ];
  return spawn('redis-server', args, { stdio: 'ignore' });
}

async function killed(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}
