import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ADMIN_TOKEN, startAgentd, STORAGES, type TestAgentd } from '../helpers/agentd.js';
import { request } from '../helpers/http.js';
import { type AgentdProcess, spawnAgentd } from '../helpers/process.js';
import { cleanupPrefix, redisUrl, uniquePrefix } from '../helpers/redis.js';
import { createTestDatabase } from '../helpers/test-database.js';

const LONG = { agent: 'simulate', input: { events: 100_000, interval_ms: 50 } };

describe('a free account across two server processes', () => {
  let database: { url: string; drop(): Promise<void> };
  let instances: AgentdProcess[] = [];
  const prefix = uniquePrefix();

  before(async () => {
    database = await createTestDatabase();
    const env = { DATABASE_URL: database.url, REDIS_URL: redisUrl(), REDIS_KEY_PREFIX: prefix, ADMIN_TOKEN };
    instances = await Promise.all([
      spawnAgentd({ ...env, INSTANCE_ID: `tenancy-${process.pid}-a` }),
      spawnAgentd({ ...env, INSTANCE_ID: `tenancy-${process.pid}-b` }),
    ]);
  });
  after(async () => {
    await Promise.all(instances.map((i) => i.kill('SIGTERM')));
    await database?.drop();
    await cleanupPrefix(prefix);
  });

  it('admits exactly one of 40 simultaneous requests, then the next after it ends', async () => {
    const [a, b] = instances as [AgentdProcess, AgentdProcess];
    const account = await request(a.url, 'POST', '/v1/admin/accounts', { token: ADMIN_TOKEN, body: { name: 'free', tier: 'free' } });
    const key = account.body.api_key as string;
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) => request((i % 2 === 0 ? a : b).url, 'POST', '/v1/runs', { token: key, body: LONG })),
    );
    const admitted = answers.filter((r) => r.status === 202);
    const refused = answers.filter((r) => r.status === 429);
    assert.equal(admitted.length, 1);
    assert.equal(refused.length, 39);
    for (const r of refused) {
      assert.equal(r.body.error.code, 'account_concurrency_limit');
      assert.equal(r.body.error.limit, 1);
      assert.equal(r.body.error.active, 1);
      // Every 429 says when to come back, in the header and the body.
      assert.equal(r.headers.get('retry-after'), '1');
      assert.equal(r.body.error.retry_after_s, 1);
    }
    const runId = admitted[0]?.body.id as string;
    const still = await request(b.url, 'POST', '/v1/runs', { token: key, body: { agent: 'echo' } });
    assert.equal(still.status, 429);
    const cancel = await request(b.url, 'POST', `/v1/runs/${runId}/cancel`, { token: key });
    assert.equal(cancel.body.status, 'cancelled');
    const next = await request(b.url, 'POST', '/v1/runs', { token: key, body: { agent: 'echo' } });
    assert.equal(next.status, 202, next.text);
  });
});

for (const storage of STORAGES) {
  describe(`fair queueing on ${storage}`, () => {
    let agentd: TestAgentd;
    before(async () => {
      agentd = await startAgentd(storage, {
        MAX_CONCURRENT_AGENT_RUNS: '2',
        RUN_QUEUE_MAX: '400',
        RUN_QUEUE_TIMEOUT_MS: '120000',
        TIER_LIMITS: 'free:1,bulk:1000',
      });
    });
    after(async () => {
      await agentd.waitForIdle();
      await agentd.close();
    });

    it("starts another account's single run before an account's 200 queued runs finish", async () => {
      const noisy = await agentd.createAccount('bulk', 'noisy');
      const quiet = await agentd.createAccount('bulk', 'quiet');
      const body = { agent: 'simulate', input: { events: 2, interval_ms: 30 } };
      const noisyIds: string[] = [];
      for (let batch = 0; batch < 10; batch += 1) {
        const created = await Promise.all(Array.from({ length: 20 }, () => agentd.as(noisy.apiKey, 'POST', '/v1/runs', { body })));
        for (const res of created) {
          assert.equal(res.status, 202, res.text);
          noisyIds.push(res.body.id);
        }
      }
      const single = await agentd.as(quiet.apiKey, 'POST', '/v1/runs', { body });
      assert.equal(single.status, 202);
      assert.equal(single.body.status, 'queued', 'the slots are busy with the noisy account');
      const quietRun = await agentd.waitForEnd(quiet.apiKey, single.body.id);
      const noisyRuns = [];
      for (const id of noisyIds) noisyRuns.push(await agentd.waitForEnd(noisy.apiKey, id));
      for (const run of [quietRun, ...noisyRuns]) assert.equal(run.status, 'completed');

      const quietStart = Date.parse(quietRun.started_at);
      const startedAfter = noisyRuns.filter((r) => Date.parse(r.started_at) > quietStart).length;
      const finishedAfter = noisyRuns.filter((r) => Date.parse(r.finished_at) > Date.parse(quietRun.finished_at)).length;
      // First come, first served would start the quiet run after all 200. Round-robin starts it
      // after at most one more noisy run once it queued, so most noisy runs start after it.
      assert.ok(startedAfter >= 100, `${startedAfter} noisy runs started after the quiet one`);
      assert.ok(finishedAfter >= 100, `${finishedAfter} noisy runs finished after the quiet one`);
    });
  });
}
