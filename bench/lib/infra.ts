import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { createClient } from 'redis';
import { freePort, type ManagedProcess, startProcess } from './procs.js';

export type RedisClient = ReturnType<typeof createClient>;

/** A database of this bench run alone on the shared Postgres; dropped by `drop()`. */
export interface BenchDatabase {
  readonly name: string;
  readonly url: string;
  drop(): Promise<void>;
}

export async function createDatabase(adminUrl: string, label: string): Promise<BenchDatabase> {
  const name = `agentd_bench_${label}_${randomBytes(4).toString('hex')}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => undefined });
  try {
    await admin.unsafe(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end({ timeout: 2 });
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  let dropping: Promise<void> | undefined;
  return {
    name,
    url: url.toString(),
    drop() {
      dropping ??= (async () => {
        const sql = postgres(adminUrl, { max: 1, onnotice: () => undefined });
        try {
          await sql.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
        } finally {
          await sql.end({ timeout: 2 });
        }
      })();
      return dropping;
    },
  };
}

/** A redis-server of this bench run alone (so INFO commandstats counts only our traffic). */
export async function startPrivateRedis(): Promise<{ url: string; proc: ManagedProcess }> {
  const port = await freePort();
  const { proc } = await startProcess(
    'redis-server',
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxclients', '10000'],
    {
      env: { PATH: process.env.PATH ?? '' },
      timeoutMs: 10_000,
      ready: (line) => (line.includes('Ready to accept connections') ? true : undefined),
    },
  );
  return { url: `redis://127.0.0.1:${port}`, proc };
}

export async function openRedisClient(url: string): Promise<RedisClient> {
  const client = createClient({ url, socket: { reconnectStrategy: false } });
  client.on('error', () => undefined); // surfaced by the failing command
  await client.connect();
  return client;
}

/** The server's `used_memory` (bytes) from INFO memory. */
export async function usedMemory(client: RedisClient): Promise<number> {
  const text = await client.sendCommand<string>(['INFO', 'memory']);
  return Number(/^used_memory:(\d+)/m.exec(text)?.[1] ?? Number.NaN);
}

/** `calls` per command from INFO commandstats. */
export async function commandCalls(client: RedisClient): Promise<Map<string, number>> {
  const text = await client.sendCommand<string>(['INFO', 'commandstats']);
  const calls = new Map<string, number>();
  for (const match of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(match[1] as string, Number(match[2]));
  return calls;
}

/** Commands executed between two INFO commandstats readings, without the bench's own probes. */
export function commandDelta(
  before: Map<string, number>,
  after: Map<string, number>,
): { total: number; byCommand: Record<string, number> } {
  const byCommand: Record<string, number> = {};
  let total = 0;
  for (const [name, calls] of after) {
    if (name === 'info' || name === 'client|list') continue;
    const delta = calls - (before.get(name) ?? 0);
    if (delta > 0) {
      byCommand[name] = delta;
      total += delta;
    }
  }
  return { total, byCommand };
}

/** Connections whose CLIENT SETNAME starts with `namePrefix`. */
export async function connectionsNamed(client: RedisClient, namePrefix: string): Promise<string[]> {
  const text = await client.sendCommand<string>(['CLIENT', 'LIST']);
  const names: string[] = [];
  for (const line of text.split('\n')) {
    const match = / name=(\S*)/.exec(line);
    if (match?.[1]?.startsWith(namePrefix)) names.push(match[1]);
  }
  return names;
}

/** Deletes every key under `prefix` (SCAN + UNLINK), never anything else. */
export async function deletePrefix(client: RedisClient, prefix: string): Promise<number> {
  if (!prefix.startsWith('agentd-bench')) throw new Error(`refusing to delete keys outside the bench prefix: ${prefix}`);
  let deleted = 0;
  const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
  for await (const keys of client.scanIterator({ MATCH: pattern, COUNT: 1_000 })) {
    if (keys.length > 0) deleted += await client.unlink(keys);
  }
  return deleted;
}
