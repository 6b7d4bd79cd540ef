import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createClient } from 'redis';
import { ADMIN_TOKEN } from '../helpers/agentd.js';
import { request } from '../helpers/http.js';
import { type PrivateRedis, startPrivateRedis } from '../helpers/private-redis.js';
import { type AgentdProcess, spawnAgentd } from '../helpers/process.js';
import { cleanupPrefix, redisUrl, uniquePrefix } from '../helpers/redis.js';
import { assertIncreasingIds, readSse, type SseEvent } from '../helpers/sse.js';
import { createTestDatabase } from '../helpers/test-database.js';
import { waitFor } from '../helpers/wait-for.js';

const tokens = (events: readonly SseEvent[]) => events.filter((e) => e.event === 'token').map((e) => e.data.seq as number);
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Two agentd processes sharing one Postgres database and one Redis. */
async function startPair(redis: string, prefix: string, databaseUrl: string, tag: string): Promise<[AgentdProcess, AgentdProcess]> {
  const common = { DATABASE_URL: databaseUrl, REDIS_URL: redis, REDIS_KEY_PREFIX: prefix, ADMIN_TOKEN, TIER_LIMITS: 'bulk:10000' };
  return Promise.all([spawnAgentd({ ...common, INSTANCE_ID: `${tag}-a` }), spawnAgentd({ ...common, INSTANCE_ID: `${tag}-b` })]);
}

describe('two agentd processes on Postgres and Redis: a run on one, listeners and cancel on the other', () => {
  let database: { url: string; drop(): Promise<void> };
  let a: AgentdProcess;
  let b: AgentdProcess;
  let key: string;
  const prefix = uniquePrefix();
  const tag = `x${process.pid}`;

  before(async () => {
    database = await createTestDatabase();
    [a, b] = await startPair(redisUrl(), prefix, database.url, tag);
    const account = await request(a.url, 'POST', '/v1/admin/accounts', { token: ADMIN_TOKEN, body: { name: 'x', tier: 'bulk' } });
    key = account.body.api_key;
  });
  after(async () => {
    await Promise.all([a?.kill('SIGTERM'), b?.kill('SIGTERM')]);
    await database?.drop();
    await cleanupPrefix(prefix);
  });

  const startOnA = async (body: unknown) => {
    const res = await request(a.url, 'POST', '/v1/runs', { token: key, body });
    assert.equal(res.status, 202, res.text);
    return res.body.id as string;
  };

  it('delivers every event exactly once, in order, to a listener on the other instance', async () => {
    const id = await startOnA({ agent: 'simulate', input: { events: 60, interval_ms: 5 } });
    const [live, late] = await Promise.all([
      readSse(`${b.url}/v1/runs/${id}/events`, { token: key }),
      (async () => {
        await waitFor(async () => (await request(b.url, 'GET', `/v1/runs/${id}`, { token: key })).body.status !== 'queued');
        return readSse(`${b.url}/v1/runs/${id}/events`, { token: key });
      })(),
    ]);
    for (const result of [live, late]) {
      assertIncreasingIds(result.events);
      assert.deepEqual(tokens(result.events), range(60));
      assert.equal(result.events.at(-1)?.event, 'end');
    }
    assert.deepEqual(
      live.events.map((e) => e.id),
      late.events.map((e) => e.id),
      'the same ids on every path',
    );
    const onA = await readSse(`${a.url}/v1/runs/${id}/events`, { token: key });
    assert.deepEqual(
      onA.events.map((e) => e.id),
      live.events.map((e) => e.id),
    );
  });

  it('cancels a run from the other instance; the run ends `cancelled` and frees its slot', async () => {
    const id = await startOnA({ agent: 'simulate', input: { events: 100_000, interval_ms: 20 } });
    await waitFor(async () => (await request(a.url, 'GET', `/v1/runs/${id}`, { token: key })).body.status === 'running');
    const cancel = await request(b.url, 'POST', `/v1/runs/${id}/cancel`, { token: key });
    assert.equal(cancel.status, 202);
    assert.deepEqual(cancel.body, { id, status: 'cancelled' });
    await waitFor(async () => {
      const capacity = await request(a.url, 'GET', '/v1/admin/capacity', { token: ADMIN_TOKEN });
      return capacity.body.runs.in_use === 0;
    });
  });

  it('cancels an agent that ignores its AbortSignal from the other instance', async () => {
    const id = await startOnA({ agent: 'simulate', input: { events: 3, interval_ms: 1_000, ignore_cancel: true } });
    const cancel = await request(b.url, 'POST', `/v1/runs/${id}/cancel`, { token: key });
    assert.equal(cancel.body.status, 'cancelled');
  });

  it('stops a revoked key within 5 s on the other instance too', async () => {
    const account = await request(a.url, 'POST', '/v1/admin/accounts', { token: ADMIN_TOKEN, body: { name: 'r', tier: 'bulk' } });
    assert.equal(account.status, 201, account.text);
    const revokable = account.body.api_key as string;
    assert.equal((await request(b.url, 'GET', '/v1/agents', { token: revokable })).status, 200, 'cached on b');
    const revokedAt = Date.now();
    const revoke = await request(a.url, 'DELETE', `/v1/admin/keys/${account.body.key_prefix}`, { token: ADMIN_TOKEN });
    assert.equal(revoke.status, 200);
    await waitFor(async () => (await request(b.url, 'GET', '/v1/agents', { token: revokable })).status === 401, {
      timeoutMs: 15_000,
      what: 'the revoked key to be refused on the other instance',
    });
    // The contract's figure, checked generously: the key cache holds an entry for 2 s.
    assert.ok(Date.now() - revokedAt < 10_000);
  });

  it('adds no Redis connection for 200 listeners on the instance that does not run the run', async () => {
    const admin = createClient({ url: redisUrl() });
    await admin.connect();
    const connectionsOfB = async () => {
      const list = String(await admin.sendCommand(['CLIENT', 'LIST']));
      return list.split('\n').filter((line) => line.includes(` name=agentd:${tag}-b:`)).length;
    };
    try {
      const id = await startOnA({ agent: 'simulate', input: { events: 100_000, interval_ms: 50 } });
      const controller = new AbortController();
      const listen = () =>
        readSse(`${b.url}/v1/runs/${id}/events`, { token: key, stopWhen: () => controller.signal.aborted, timeoutMs: 60_000 });
      const first = listen();
      await waitFor(async () => (await request(b.url, 'GET', '/metrics')).text.includes('agentd_sse_listeners 1'));
      const atOne = await connectionsOfB();
      const rest = range(199).map(listen);
      await waitFor(async () => (await request(b.url, 'GET', '/metrics')).text.includes('agentd_sse_listeners 200'));
      const atTwoHundred = await connectionsOfB();
      assert.ok(atOne >= 1 && atOne <= 4, `connections named for the instance: ${atOne}`);
      assert.equal(atTwoHundred, atOne);
      await request(a.url, 'POST', `/v1/runs/${id}/cancel`, { token: key });
      const results = await Promise.all([first, ...rest]);
      for (const result of results) assert.equal(result.events.at(-1)?.event, 'end');
      controller.abort();
    } finally {
      await admin.quit();
    }
  });
});

describe('a Redis FLUSHALL mid-run (on a private Redis server)', () => {
  let database: { url: string; drop(): Promise<void> };
  let redis: PrivateRedis;
  let a: AgentdProcess;
  let b: AgentdProcess;

  before(async () => {
    database = await createTestDatabase();
    redis = await startPrivateRedis();
    [a, b] = await startPair(redis.url, 'agentd:', database.url, `f${process.pid}`);
  });
  after(async () => {
    await Promise.all([a?.kill('SIGTERM'), b?.kill('SIGTERM')]);
    await redis?.stop();
    await database?.drop();
  });

  it('loses no event: catch-up from the first returns every event with the same ids', async () => {
    const account = await request(a.url, 'POST', '/v1/admin/accounts', { token: ADMIN_TOKEN, body: { name: 'f', tier: 'bulk' } });
    const key = account.body.api_key as string;
    const run = await request(a.url, 'POST', '/v1/runs', {
      token: key,
      body: { agent: 'simulate', input: { events: 80, interval_ms: 10 } },
    });
    const id = run.body.id as string;
    let flushed = false;
    const live = readSse(`${b.url}/v1/runs/${id}/events`, {
      token: key,
      onEvent: (event) => {
        if (!flushed && event.event === 'token' && event.data.seq === 30) {
          flushed = true;
          void redis.command(['FLUSHALL']);
        }
      },
    });
    const liveResult = await live;
    assert.ok(flushed);
    assert.deepEqual(tokens(liveResult.events), range(80), 'the live listener got every event');
    assertIncreasingIds(liveResult.events);
    for (const instance of [a, b]) {
      const replay = await readSse(`${instance.url}/v1/runs/${id}/events`, { token: key });
      assert.deepEqual(
        replay.events.map((e) => e.id),
        liveResult.events.map((e) => e.id),
      );
    }
  });
});
