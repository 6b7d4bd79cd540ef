import type { Logger } from '../../domain/index.js';

/** The one command this reads with: node-redis' `configGet`, or a fake in tests. */
export interface ConfigReader {
  configGet(parameter: string): Promise<Record<string, string>>;
}

/**
 * The server's `maxclients` (CONFIG GET maxclients), or null when the server refuses CONFIG
 * (managed Redis often renames or disables it) or answers without a number; then the caller
 * skips its check, and a debug line says why.
 */
export async function readMaxClients(redis: ConfigReader, logger: Logger): Promise<number | null> {
  let reply: Record<string, string>;
  try {
    reply = await redis.configGet('maxclients');
  } catch (error) {
    logger.debug('Redis refused CONFIG GET maxclients; not checking the connection budget', { error });
    return null;
  }
  const text = reply.maxclients;
  const value = text !== undefined && /^\d+$/.test(text) ? Number(text) : null;
  if (value === null) logger.debug('Redis gave no maxclients; not checking the connection budget', { maxclients: text ?? null });
  return value;
}
