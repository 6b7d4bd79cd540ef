import { parseEventId, type EventId, type RunEvent } from '../../domain/index.js';
import type { RedisConnections } from './redis-connections.js';
import { RedisScript } from './redis-script.js';

/**
 * Appends the `end` of a run whose writer is gone, as one script, so it lands after whatever
 * the stream holds at that moment: the id is `notBefore` or one past the stream's last entry,
 * whichever is later, and `prev` is that last entry (`prevIfEmpty` for an empty stream). A
 * dead writer that comes back and goes on writing can only add entries after the `end`,
 * which readers never pass. A stream whose last entry is an `end` is left as it is and that
 * `end` is returned. Then EXPIRE, and the PUBLISH that wakes readers on other instances.
 *
 * KEYS: the stream. ARGV: notBefore ms, notBefore seq, prevIfEmpty ('' for none), data JSON,
 * ttl seconds, channel, writer instance id, run id. Returns `{id, prev, data}` of the `end`.
 */
const SCRIPT = new RedisScript(`
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local ms, seq, prev = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
if #top > 0 then
  local topId, fields = top[1][1], top[1][2]
  local kind, data, topPrev = '', '', ''
  for i = 1, #fields, 2 do
    if fields[i] == 't' then kind = fields[i + 1] elseif fields[i] == 'd' then data = fields[i + 1] elseif fields[i] == 'p' then topPrev = fields[i + 1] end
  end
  if kind == 'end' then return {topId, topPrev, data} end
  local topMs, topSeq = string.match(topId, '^(%d+)-(%d+)$')
  topMs, topSeq = tonumber(topMs), tonumber(topSeq)
  if topMs > ms or (topMs == ms and topSeq >= seq) then ms, seq = topMs, topSeq + 1 end
  prev = topId
end
local id = string.format('%d-%d', ms, seq)
redis.call('XADD', KEYS[1], id, 't', 'end', 'd', ARGV[4], 'p', prev)
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('PUBLISH', ARGV[6], '{"i":' .. cjson.encode(ARGV[7]) .. ',"r":[[' .. cjson.encode(ARGV[8]) .. ',"' .. id .. '",1]]}')
return {id, prev, ARGV[4]}
`);

export interface SealRequest {
  readonly key: string;
  readonly runId: string;
  readonly json: string;
  readonly notBefore: EventId;
  readonly prevIfEmpty: EventId | null;
  readonly ttlSeconds: number;
  readonly channel: string;
  readonly instanceId: string;
}

/** Runs the seal script (EVALSHA, loading it with EVAL after a Redis restart); returns the stream's `end`. */
export async function sealStream(redis: RedisConnections, request: SealRequest): Promise<RunEvent> {
  const { notBefore, prevIfEmpty } = request;
  const prevText = prevIfEmpty === null ? '' : `${prevIfEmpty.ms}-${prevIfEmpty.seq}`;
  const argv = [
    String(notBefore.ms),
    String(notBefore.seq),
    prevText,
    request.json,
    String(request.ttlSeconds),
    request.channel,
    request.instanceId,
    request.runId,
  ];
  const reply = await redis.runScript(SCRIPT, [request.key], argv);
  const [idText, prevReply, json] = Array.isArray(reply) ? (reply as unknown[]) : [];
  const id = typeof idText === 'string' ? parseEventId(idText) : null;
  const prev = typeof prevReply === 'string' && prevReply !== '' ? parseEventId(prevReply) : null;
  if (id === null || typeof json !== 'string') throw new Error(`the seal script answered ${JSON.stringify(reply)}`);
  return { id, prev, type: 'end', json };
}
