import type { RedisClient } from './redis-connections.js';
import { RedisScript } from './redis-script.js';

/**
 * One flush of the event store as one Redis command: XADD every event (`MAXLEN ~` its stream's
 * cap, the runtime's ids), EXPIRE the streams that are due, PUBLISH the notification. One
 * command per flush instead of one per event: the client encodes, queues and settles one
 * command, not hundreds (at 40,000 events/s the per-command work was a large share of the
 * writer's CPU).
 *
 * ARGV: ttlSeconds, then each key's MAXLEN (one per KEYS entry, in order), the event count,
 * then per event `key index, id, type, data JSON, prev id`; then the count of streams to expire
 * and their key indexes; then channel and message.
 * An XADD refused because its id is not above the stream's top (the event is already there) is skipped;
 * any other refusal is counted and the first reported, and the rest of the batch still goes.
 * Returns `{refused, firstError}`.
 */
const SCRIPT = new RedisScript(`
local ttl, i, refused, firstError = ARGV[1], 2, 0, ''
local maxLens = {}
for k = 1, #KEYS do
  maxLens[k] = ARGV[i]
  i = i + 1
end
local events = tonumber(ARGV[i])
i = i + 1
for _ = 1, events do
  local k = tonumber(ARGV[i])
  local reply = redis.pcall('XADD', KEYS[k], 'MAXLEN', '~', maxLens[k], ARGV[i + 1],
    't', ARGV[i + 2], 'd', ARGV[i + 3], 'p', ARGV[i + 4])
  if type(reply) == 'table' and reply.err and not string.find(reply.err, 'equal or smaller', 1, true) then
    refused = refused + 1
    if firstError == '' then firstError = reply.err end
  end
  i = i + 5
end
local expiring = tonumber(ARGV[i])
for e = 1, expiring do redis.call('EXPIRE', KEYS[tonumber(ARGV[i + e])], ttl) end
i = i + expiring + 1
redis.call('PUBLISH', ARGV[i], ARGV[i + 1])
return {refused, firstError}
`);

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

/** Arguments of the script for a batch: the keys, then ARGV. */
export function appendArguments(batch: AppendBatch): { keys: string[]; argv: string[] } {
  const keys: string[] = [];
  const indexOf = new Map<string, string>();
  const keyIndex = (key: string): string => {
    let index = indexOf.get(key);
    if (index === undefined) {
      keys.push(key);
      index = String(keys.length);
      indexOf.set(key, index);
    }
    return index;
  };
  const eventArgs: string[] = [];
  for (const event of batch.events) eventArgs.push(keyIndex(event.key), event.id, event.type, event.json, event.prev);
  const expireArgs = batch.expire.map(keyIndex);
  const maxLens = keys.map((key) => {
    const maxLen = batch.maxLens.get(key);
    if (maxLen === undefined) throw new Error(`no MAXLEN for stream ${key}`);
    return String(maxLen);
  });
  const argv = [String(batch.ttlSeconds), ...maxLens, String(batch.events.length), ...eventArgs];
  argv.push(String(expireArgs.length), ...expireArgs, batch.channel, batch.message);
  return { keys, argv };
}

/** Runs the script for a batch (EVALSHA, loading it with EVAL after a Redis restart); throws AppendRefusedError. */
export async function appendBatch(client: RedisClient, batch: AppendBatch): Promise<void> {
  const { keys, argv } = appendArguments(batch);
  const reply = await SCRIPT.run(client, keys, argv);
  const [refused, firstError] = Array.isArray(reply) ? reply : [];
  if (typeof refused === 'number' && refused > 0) throw new AppendRefusedError(refused, String(firstError));
}
