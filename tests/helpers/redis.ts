import { randomBytes } from 'node:crypto';
import { createClient } from 'redis';

export type TestRedisClient = ReturnType<typeof createClient>;

const START_HINT =
  'start one with: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no ' +
  '(or point TEST_REDIS_URL at one)';

/** The Redis the tests use: TEST_REDIS_URL, else REDIS_URL, else the local default. */
export function redisUrl(): string {
  return process.env['TEST_REDIS_URL'] ?? process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
}

/** A key prefix no other test (or run of this one) uses: `agentd-test:<random>:`. */
export function uniquePrefix(): string {
  return `agentd-test:${randomBytes(6).toString('hex')}:`;
}

/**
 * A plain client for test-side inspection (CLIENT LIST, INFO, TTL, CLIENT KILL). Fails at once,
 * saying how to start Redis, when none answers: Redis tests are never skipped.
 */
export async function openTestClient(): Promise<TestRedisClient> {
  const url = redisUrl();
  const client = createClient({ url, socket: { connectTimeout: 2_000, reconnectStrategy: false } });
  let lastError: unknown;
  client.on('error', (error: unknown) => {
    lastError = error; // reported by the connect failure below
  });
  try {
    await client.connect();
  } catch (error) {
    throw new Error(`Redis is not reachable at ${url}; ${START_HINT}`, { cause: lastError ?? error });
  }
  return client;
}

/** Deletes every key under `prefix` (SCAN + UNLINK), never anything else. */
export async function cleanupPrefix(prefix: string): Promise<void> {
  if (!prefix.startsWith('agentd-test:')) throw new Error(`refusing to clean up non-test prefix ${prefix}`);
  const client = await openTestClient();
  try {
    const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
    for await (const keys of client.scanIterator({ MATCH: pattern, COUNT: 1_000 })) {
      if (keys.length > 0) await client.unlink(keys);
    }
  } finally {
    client.destroy();
  }
}

export interface ClientInfo {
  readonly id: string;
  readonly name: string;
  readonly [field: string]: string;
}

/** CLIENT LIST parsed into one record per connection. */
export async function clientList(client: TestRedisClient): Promise<ClientInfo[]> {
  const text = await client.sendCommand<string>(['CLIENT', 'LIST']);
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const fields: Record<string, string> = {};
      for (const pair of line.trim().split(' ')) {
        const eq = pair.indexOf('=');
        if (eq > 0) fields[pair.slice(0, eq)] = pair.slice(eq + 1);
      }
      return { ...fields, id: fields['id'] ?? '', name: fields['name'] ?? '' };
    });
}

/** Connections whose CLIENT SETNAME starts with `namePrefix`. */
export async function clientsNamed(client: TestRedisClient, namePrefix: string): Promise<ClientInfo[]> {
  return (await clientList(client)).filter((info) => info.name.startsWith(namePrefix));
}

/** CLIENT KILL of every connection with exactly this name (Redis 7.0 has no NAME filter); returns how many. */
export async function killClientsNamed(client: TestRedisClient, name: string): Promise<number> {
  const targets = (await clientList(client)).filter((info) => info.name === name);
  for (const target of targets) await client.sendCommand(['CLIENT', 'KILL', 'ID', target.id]);
  return targets.length;
}

/** `calls` per command from INFO commandstats (lower-case names). */
export async function commandCalls(client: TestRedisClient): Promise<Map<string, number>> {
  const text = await client.sendCommand<string>(['INFO', 'commandstats']);
  const calls = new Map<string, number>();
  for (const match of text.matchAll(/^cmdstat_([a-z|_-]+):calls=(\d+)/gm)) calls.set(match[1] as string, Number(match[2]));
  return calls;
}
