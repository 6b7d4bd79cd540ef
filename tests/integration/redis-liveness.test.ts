/**
 * A half-open Redis connection (the proxy in between black-holes it: open, silent, for good)
 * is noticed within seconds and replaced; the listener it fed gets every event once and the
 * end, the subscriber re-reading what pub/sub lost meanwhile.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startAgentd, type TestAgentd } from '../helpers/agentd.js';
import { metricSum, parseMetrics } from '../helpers/metrics.js';
import { cleanupPrefix, redisUrl, uniquePrefix } from '../helpers/redis.js';
import { assertIncreasingIds, readSse } from '../helpers/sse.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { createTestDatabase } from '../helpers/test-database.js';
import { waitFor } from '../helpers/wait-for.js';

describe('a half-open Redis connection', () => {
  let database: { url: string; drop(): Promise<void> };
  let proxy: TcpProxy;
  let writer: TestAgentd;
  let reader: TestAgentd;
  const prefix = uniquePrefix();

  before(async () => {
    database = await createTestDatabase();
    const direct = new URL(redisUrl());
    proxy = await startTcpProxy(Number(direct.port || 6379), direct.hostname);
    const shared = { DATABASE_URL: database.url, REDIS_KEY_PREFIX: prefix };
    writer = await startAgentd('pglite', { ...shared, REDIS_URL: redisUrl() });
    reader = await startAgentd('pglite', { ...shared, REDIS_URL: `redis://${proxy.address}` });
  });
  after(async () => {
    proxy?.restore();
    await writer?.close();
    await reader?.close();
    await proxy?.close();
    await database?.drop();
    await cleanupPrefix(prefix);
  });

  it('is replaced within seconds, and the listener on it misses nothing', async () => {
    const { apiKey } = await writer.createAccount('pro');
    const created = await writer.as(apiKey, 'POST', '/v1/runs', { body: { agent: 'simulate', input: { events: 150, interval_ms: 20 } } });
    assert.equal(created.status, 202);
    let received = 0;
    const listening = readSse(`${reader.url}/v1/runs/${created.body.id}/events`, { token: apiKey, onEvent: () => (received += 1) });
    await waitFor(() => received > 5, { what: 'the listener to receive events' });

    proxy.blackhole();
    await waitFor(async () => (await reader.admin('GET', '/v1/admin/capacity')).body.redis.connections < 2, {
      what: 'the reader instance to notice its dead connections',
    });
    proxy.restore();
    await waitFor(async () => (await reader.admin('GET', '/v1/admin/capacity')).body.redis.connections === 2, {
      what: 'the reader instance to reconnect',
    });
    const metrics = parseMetrics((await reader.admin('GET', '/metrics')).text);
    assert.ok(metricSum(metrics, 'agentd_event_store_reconnects_total') >= 2, 'both connections count as reconnected');

    const { events } = await listening;
    assertIncreasingIds(events);
    const tokens = events.filter((e) => e.event === 'token').map((e) => e.data.seq as number);
    assert.deepEqual(
      tokens,
      Array.from({ length: 150 }, (_, i) => i),
    );
    assert.deepEqual(events.at(-1)?.data, { status: 'completed' });
    await reader.waitForIdle();
  });
});
