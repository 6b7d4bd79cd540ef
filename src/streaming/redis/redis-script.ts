import { createHash } from 'node:crypto';
import { ErrorReply } from 'redis';
import type { RedisClient } from './redis-connections.js';

/** A Lua script run by its SHA1 (EVALSHA), loaded with EVAL when Redis does not know it (after a restart). */
export class RedisScript {
  private readonly sha1: string;

  constructor(private readonly source: string) {
    this.sha1 = createHash('sha1').update(source).digest('hex');
  }

  /** Runs the script with these keys and arguments; resolves with its reply. */
  async run(client: RedisClient, keys: readonly string[], argv: readonly string[]): Promise<unknown> {
    const tail = [String(keys.length), ...keys, ...argv];
    try {
      return await client.sendCommand<unknown>(['EVALSHA', this.sha1, ...tail]);
    } catch (error) {
      if (!(error instanceof ErrorReply) || !error.message.startsWith('NOSCRIPT')) throw error;
      return client.sendCommand<unknown>(['EVAL', this.source, ...tail]);
    }
  }
}
