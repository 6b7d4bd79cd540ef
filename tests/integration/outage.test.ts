import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startAgentd, type TestAgentd } from '../helpers/agentd.js';
import { request } from '../helpers/http.js';
import { readSse } from '../helpers/sse.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { createTestDatabase } from '../helpers/test-database.js';
import { waitFor } from '../helpers/wait-for.js';

describe('a database outage (through a TCP proxy)', () => {
  let database: { url: string; drop(): Promise<void> };
  let proxy: TcpProxy;
  let agentd: TestAgentd;
  let key: string;

  before(async () => {
    database = await createTestDatabase();
    const direct = new URL(database.url);
    proxy = await startTcpProxy(Number(direct.port || 5432), direct.hostname);
    const viaProxy = new URL(database.url);
    viaProxy.host = proxy.address;
    // The test's own storage is the proxied database; startAgentd's fresh one goes unused.
    agentd = await startAgentd('pglite', { DATABASE_URL: viaProxy.toString(), DB_ACQUIRE_TIMEOUT_MS: '1000', DB_MAX_CONNECTIONS: '4' });
    key = (await agentd.createAccount('pro')).apiKey;
  });
  after(async () => {
    proxy.restore();
    await agentd?.waitForIdle();
    await agentd?.close();
    await proxy?.close();
    await database?.drop();
  });

  it('refuses new runs with 503, keeps serving, and records the end of a running run once the database is back', async () => {
    const created = await agentd.as(key, 'POST', '/v1/runs', { body: { agent: 'simulate', input: { events: 10, interval_ms: 50 } } });
    assert.equal(created.status, 202);
    const id = created.body.id as string;
    let following!: () => void;
    const followed = new Promise<void>((resolve) => (following = resolve));
    const stream = readSse(`${agentd.url}/v1/runs/${id}/events`, { token: key, onEvent: () => following() });
    await followed;

    proxy.cut();
    const refused = await agentd.as(key, 'POST', '/v1/runs', { body: { agent: 'echo' } });
    assert.equal(refused.status, 503);
    assert.equal(refused.body.error.code, 'dependency_unavailable');
    assert.equal(refused.headers.get('retry-after'), '1');
    assert.equal(refused.body.error.retry_after_s, 1);
    assert.equal((await request(agentd.url, 'GET', '/healthz')).status, 200);
    // A blip does not take the instance out of the load balancer; an outage does, within seconds.
    const blip = await request(agentd.url, 'GET', '/readyz');
    assert.equal(blip.status, 200);
    assert.match(blip.body.degraded.join(' '), /database/);
    const ready = await waitFor(
      async () => {
        const res = await request(agentd.url, 'GET', '/readyz');
        return res.status === 503 ? res : undefined;
      },
      { what: '/readyz to fail' },
    );
    assert.match(ready.body.failures.join(' '), /database/);
    assert.equal(ready.headers.get('retry-after'), '1');
    // The agent finishes while the database is away (10 events, 50 ms apart); its end cannot
    // be recorded yet, so the stream has no `end` until the database is back.
    await waitFor(async () => (await agentd.as(key, 'GET', `/v1/runs/${id}`)).status === 503, { what: 'reads to fail' });
    proxy.restore();
    const { events } = await stream;
    assert.equal(events.at(-1)?.event, 'end');
    assert.deepEqual(events.at(-1)?.data, { status: 'completed' });
    const run = await agentd.waitForEnd(key, id);
    assert.equal(run.status, 'completed');
    const next = await agentd.as(key, 'POST', '/v1/runs', { body: { agent: 'echo' } });
    assert.equal(next.status, 202, 'the lease was released');
    await agentd.waitForEnd(key, next.body.id);
  });
});
