import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { type PrivateRedis, startPrivateRedis } from '../helpers/private-redis.js';
import { runAgentdExpectingFailure, spawnAgentd } from '../helpers/process.js';
import { createTestDatabase } from '../helpers/test-database.js';

const ADMIN_TOKEN = 'test-admin-token-0123456789abcdef';

describe('Redis maxclients at start-up (2 connections per process of every instance)', () => {
  let database: { url: string; drop(): Promise<void> };
  const servers: PrivateRedis[] = [];
  const redis = async (args: string[] = []) => {
    const server = await startPrivateRedis(args);
    servers.push(server);
    return server;
  };
  before(async () => {
    database = await createTestDatabase();
  });
  after(async () => {
    for (const server of servers) await server.stop();
    await database.drop();
  });

  it('stops with exit 2 when DB_INSTANCES × 2 exceeds maxclients', async () => {
    const server = await redis();
    await server.command(['CONFIG', 'SET', 'maxclients', '7']);
    const result = await runAgentdExpectingFailure({ ADMIN_TOKEN, DATABASE_URL: database.url, REDIS_URL: server.url, DB_INSTANCES: '4' });
    assert.equal(result.code, 2, result.stderr);
    assert.match(
      result.stderr,
      /Redis maxclients is 7 but 4 agentd instances \(DB_INSTANCES\) of 1 processes each \(WORKERS\) need 8 connections/,
    );
  });

  it('counts every worker: WORKERS=2 with DB_INSTANCES=4 needs 16 (the primary exits 2)', async () => {
    const server = await redis();
    await server.command(['CONFIG', 'SET', 'maxclients', '15']);
    const env = { ADMIN_TOKEN, DATABASE_URL: database.url, REDIS_URL: server.url, DB_INSTANCES: '4', WORKERS: '2' };
    const result = await runAgentdExpectingFailure(env);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /of 2 processes each \(WORKERS\) need 16 connections/);
    await server.command(['CONFIG', 'SET', 'maxclients', '16']);
    const agentd = await spawnAgentd(env);
    assert.equal(await agentd.kill('SIGTERM'), 0);
  });

  it('skips the check, with a debug line, when the server refuses CONFIG (managed Redis)', async () => {
    const server = await redis(['--maxclients', '7', '--rename-command', 'CONFIG', '']);
    const agentd = await spawnAgentd({
      ADMIN_TOKEN,
      DATABASE_URL: database.url,
      REDIS_URL: server.url,
      DB_INSTANCES: '4',
      LOG_LEVEL: 'debug',
    });
    try {
      assert.ok(agentd.logs().some((line) => line.message === 'Redis refused CONFIG GET maxclients; not checking the connection budget'));
    } finally {
      assert.equal(await agentd.kill('SIGTERM'), 0);
    }
  });
});
