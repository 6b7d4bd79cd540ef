/** One seed of a Redis Cluster: any node's address; node-redis discovers the rest (CLUSTER SLOTS). */
export interface RedisClusterNode {
  readonly host: string;
  readonly port: number;
}

/**
 * Parses REDIS_CLUSTER_NODES, `10.0.0.1:7000,10.0.0.2:7000` (IPv6 in brackets:
 * `[::1]:7000`); throws Error with a human message on bad input. Duplicates are dropped.
 */
export function parseRedisClusterNodes(text: string): readonly RedisClusterNode[] {
  const entries = text
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
  if (entries.length === 0) throw new Error('must be a comma list of host:port seeds, e.g. 10.0.0.1:7000,10.0.0.2:7000');
  const seen = new Map<string, RedisClusterNode>();
  for (const entry of entries) {
    const node = nodeOf(entry);
    seen.set(`${node.host}:${node.port}`, node);
  }
  return [...seen.values()];
}

function nodeOf(entry: string): RedisClusterNode {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(entry);
  const port = match === null ? NaN : Number(match[3]);
  const host = match?.[1] ?? match?.[2];
  if (host === undefined || !Number.isInteger(port) || port < 1 || port > 65_535) {
    throw new Error(`must be a comma list of host:port seeds (port 1-65535); "${entry}" is not`);
  }
  return { host, port };
}
