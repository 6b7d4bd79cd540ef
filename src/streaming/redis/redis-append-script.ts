import type { RedisConnections } from './redis-connections.js';
import { RedisScript } from './redis-script.js';

/**
 * One flush of the event store as one Redis command per shard: XADD every event (`MAXLEN ~` its
 * stream's cap, the runtime's ids), EXPIRE the streams that are due, PUBLISH the notification.
 * One command per flush instead of one per event: the client encodes, queues and settles one
 * command, not hundreds (at 40,000 events/s the per-command work was a large share of the
 * writer's CPU).
 *
 * On a Redis Cluster each run's stream has its own slot, and a script may only declare keys of
 * one slot; so the streams travel in ARGV and KEYS holds the first (it routes the script to its
 * shard), and `allow-cross-slot-keys` (a cluster needs Redis >= 7) lets the script reach the
 * others on the same shard (the writer groups a batch by shard).
 *
 * ARGV: ttlSeconds, the stream count, then per stream `key, MAXLEN`; the event count, then per
 * event `stream index, id, type, data JSON, prev id`; then the count of streams to expire and
 * their indexes; then channel and message.
 * An XADD refused because its id is not above the stream's top (the event is already there) is
 * skipped; any other refusal (an EXPIRE's too) is counted and the first reported, and the rest of
 * the batch still goes. Returns `{refused, firstError}`.
 */
const SCRIPT = new RedisScript(
  `
local ttl, streams, i, refused, firstError = ARGV[1], tonumber(ARGV[2]), 3, 0, ''
local keys, maxLens = {}, {}
for k = 1, streams do
  keys[k], maxLens[k] = ARGV[i], ARGV[i + 1]
  i = i + 2
end
local function refuse(reply)
  refused = refused + 1
  if firstError == '' then firstError = reply.err end
end
local events = tonumber(ARGV[i])
i = i + 1
for _ = 1, events do
  local k = tonumber(ARGV[i])
  local reply = redis.pcall('XADD', keys[k], 'MAXLEN', '~', maxLens[k], ARGV[i + 1],
    't', ARGV[i + 2], 'd', ARGV[i + 3], 'p', ARGV[i + 4])
  if type(reply) == 'table' and reply.err and not string.find(reply.err, 'equal or smaller', 1, true) then refuse(reply) end
  i = i + 5
end
local expiring = tonumber(ARGV[i])
for e = 1, expiring do
  local reply = redis.pcall('EXPIRE', keys[tonumber(ARGV[i + e])], ttl)
  if type(reply) == 'table' and reply.err then refuse(reply) end
end
i = i + expiring + 1
redis.call('PUBLISH', ARGV[i], ARGV[i + 1])
return {refused, firstError}
`,
  { crossSlotKeys: true },
);

export interface AppendEvent {
  readonly key: string;
  readonly id: string;
  readonly type: string;
  readonly json: string;
  /** The previous event's id, '' for the first. */
  readonly prev: string;
}

export interface AppendBatch {
  readonly events: readonly AppendEvent[];
  /** Stream keys to give the TTL (each must have an event in the batch). */
  readonly expire: readonly string[];
  readonly ttlSeconds: number;
  /** Each stream's MAXLEN (`~`), by key: every key of the batch's events. */
  readonly maxLens: ReadonlyMap<string, number>;
  readonly channel: string;
  readonly message: string;
}

/** The Redis error of the first refused XADD of a batch. */
export class AppendRefusedError extends Error {
  constructor(
    readonly refused: number,
    firstError: string,
  ) {
    super(`Redis refused ${refused} events of a batch: ${firstError}`);
    this.name = 'AppendRefusedError';
  }
}

/** Arguments of the script for a batch: the keys (the first stream, which routes it), then ARGV. */
export function appendArguments(batch: AppendBatch): { keys: string[]; argv: string[] } {
  const streams: string[] = [];
  const indexOf = new Map<string, string>();
  const keyIndex = (key: string): string => {
    let index = indexOf.get(key);
    if (index === undefined) {
      streams.push(key);
      index = String(streams.length);
      indexOf.set(key, index);
    }
    return index;
  };
  const eventArgs: string[] = [];
  for (const event of batch.events) eventArgs.push(keyIndex(event.key), event.id, event.type, event.json, event.prev);
  const expireArgs = batch.expire.map(keyIndex);
  const streamArgs = streams.flatMap((key) => {
    const maxLen = batch.maxLens.get(key);
    if (maxLen === undefined) throw new Error(`no MAXLEN for stream ${key}`);
    return [key, String(maxLen)];
  });
  const argv = [String(batch.ttlSeconds), String(streams.length), ...streamArgs, String(batch.events.length), ...eventArgs];
  argv.push(String(expireArgs.length), ...expireArgs, batch.channel, batch.message);
  return { keys: streams.slice(0, 1), argv };
}

/**
 * Runs the script for a batch whose streams all live on one shard (EVALSHA, loading it with
 * EVAL after a Redis restart); throws AppendRefusedError.
 */
export async function appendBatch(redis: RedisConnections, batch: AppendBatch): Promise<void> {
  const { keys, argv } = appendArguments(batch);
  const reply = await redis.runScript(SCRIPT, keys, argv);
  const [refused, firstError] = Array.isArray(reply) ? reply : [];
  if (typeof refused === 'number' && refused > 0) throw new AppendRefusedError(refused, String(firstError));
}
