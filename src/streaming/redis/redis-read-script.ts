import { RedisScript, type SendCommand } from './redis-script.js';

/**
 * Reads several streams of one shard of a Redis Cluster as one command (an XREAD over several
 * slots is refused with CROSSSLOT): per stream, XRANGE after its id, COUNT at most; answered in
 * XREAD's shape, `{key, entries}` for each stream that has any. KEYS: the first stream (it routes
 * the script). ARGV: count, then per stream `key, id`.
 */
const SCRIPT = new RedisScript(
  `
local count, out = ARGV[1], {}
for i = 2, #ARGV, 2 do
  local entries = redis.call('XRANGE', ARGV[i], '(' .. ARGV[i + 1], '+', 'COUNT', count)
  if #entries > 0 then out[#out + 1] = {ARGV[i], entries} end
end
return out
`,
  { crossSlotKeys: true, readOnly: true },
);

/** The streams (`[key, after id]`, all on one shard) read after their ids, as an XREAD reply. */
export function readShardStreams(send: SendCommand, streams: ReadonlyArray<readonly [string, string]>, count: number): Promise<unknown> {
  const first = streams[0];
  if (first === undefined) return Promise.resolve([]);
  return SCRIPT.run(send, [first[0]], [String(count), ...streams.flat()], true);
}
