import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Logger } from '../../src/domain/index.js';
import { readMaxClients } from '../../src/streaming/redis/redis-max-clients.js';
import { openTestClient } from '../helpers/redis.js';

/** A logger that keeps its debug lines. */
function debugLines(): { logger: Logger; lines: { message: string; meta?: Record<string, unknown> }[] } {
  const lines: { message: string; meta?: Record<string, unknown> }[] = [];
  const ignore = () => undefined;
  const logger: Logger = {
    error: ignore,
    warn: ignore,
    info: ignore,
    debug: (message, meta) => lines.push({ message, ...(meta === undefined ? {} : { meta }) }),
    child: () => logger,
    withContext: (_fields, fn) => fn(),
  };
  return { logger, lines };
}

describe('readMaxClients', () => {
  it("reads the server's maxclients", async () => {
    const client = await openTestClient();
    try {
      const { logger, lines } = debugLines();
      const expected = Number((await client.configGet('maxclients')).maxclients);
      assert.ok(expected > 0);
      assert.equal(await readMaxClients(client, logger), expected);
      assert.deepEqual(lines, []);
    } finally {
      await client.quit();
    }
  });

  it('returns null with a debug line when the server refuses CONFIG (managed Redis)', async () => {
    const { logger, lines } = debugLines();
    const refusal = Object.assign(new Error("ERR unknown command 'CONFIG'"), { code: 'ERR' });
    assert.equal(await readMaxClients({ configGet: () => Promise.reject(refusal) }, logger), null);
    assert.equal(lines.length, 1);
    assert.match(lines[0]?.message ?? '', /refused CONFIG GET maxclients/);
    assert.equal(lines[0]?.meta?.error, refusal);
  });

  it('returns null when the answer has no number', async () => {
    const { logger, lines } = debugLines();
    assert.equal(await readMaxClients({ configGet: () => Promise.resolve({}) }, logger), null);
    assert.equal(lines.length, 1);
  });
});
