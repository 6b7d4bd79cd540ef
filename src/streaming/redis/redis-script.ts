import { createHash } from 'node:crypto';
import { ErrorReply } from 'redis';

/** Sends one command (routed by the script's first key on a cluster); resolves with its reply. */
export type SendCommand = (args: readonly string[]) => Promise<unknown>;

export interface RedisScriptOptions {
  /**
   * The script touches keys it does not declare, of other slots on the same shard (the
   * caller groups them so): on a Redis Cluster it runs with `allow-cross-slot-keys` (Redis >= 7).
   */
  readonly crossSlotKeys?: boolean;
  /** It only reads (`no-writes` with the flag above: Redis then runs it even past maxmemory). */
  readonly readOnly?: boolean;
}

interface Variant {
  readonly source: string;
  readonly sha1: string;
}

const variant = (source: string): Variant => ({ source, sha1: createHash('sha1').update(source).digest('hex') });

/** A Lua script run by its SHA1 (EVALSHA), loaded with EVAL when Redis does not know it (after a restart). */
export class RedisScript {
  private readonly plain: Variant;
  private readonly onCluster: Variant;

  constructor(source: string, options: RedisScriptOptions = {}) {
    this.plain = variant(source);
    // One server needs no flag, and a Redis 6 would refuse the shebang line.
    const flags = options.readOnly === true ? 'no-writes,allow-cross-slot-keys' : 'allow-cross-slot-keys';
    this.onCluster = options.crossSlotKeys === true ? variant(`#!lua flags=${flags}\n${source}`) : this.plain;
  }

  /** Runs the script with these keys and arguments through `send` (`cluster`: on a Redis Cluster); resolves with its reply. */
  async run(send: SendCommand, keys: readonly string[], argv: readonly string[], cluster = false): Promise<unknown> {
    const { source, sha1 } = cluster ? this.onCluster : this.plain;
    const tail = [String(keys.length), ...keys, ...argv];
    try {
      return await send(['EVALSHA', sha1, ...tail]);
    } catch (error) {
      if (!(error instanceof ErrorReply) || !error.message.startsWith('NOSCRIPT')) throw error;
      return send(['EVAL', source, ...tail]);
    }
  }
}
