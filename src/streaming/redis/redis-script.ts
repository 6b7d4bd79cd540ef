import { createHash } from 'node:crypto';
import { ErrorReply } from 'redis';

/** Sends one command (routed by the script's first key on a cluster); resolves with its reply. */
export type SendCommand = (args: readonly string[]) => Promise<unknown>;

/** A Lua script run by its SHA1 (EVALSHA), loaded with EVAL when Redis does not know it (after a restart). */
export class RedisScript {
  private readonly sha1: string;

  constructor(private readonly source: string) {
    this.sha1 = createHash('sha1').update(source).digest('hex');
  }

  /** Runs the script with these keys and arguments through `send`; resolves with its reply. */
  async run(send: SendCommand, keys: readonly string[], argv: readonly string[]): Promise<unknown> {
    const tail = [String(keys.length), ...keys, ...argv];
    try {
      return await send(['EVALSHA', this.sha1, ...tail]);
    } catch (error) {
      if (!(error instanceof ErrorReply) || !error.message.startsWith('NOSCRIPT')) throw error;
      return send(['EVAL', this.source, ...tail]);
    }
  }
}
