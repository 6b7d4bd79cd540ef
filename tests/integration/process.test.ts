import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ADMIN_TOKEN, createStorageEnv, STORAGES } from '../helpers/agentd.js';
import { request } from '../helpers/http.js';
import { runAgentdExpectingFailure, spawnAgentd } from '../helpers/process.js';
import { waitFor } from '../helpers/wait-for.js';

const LONG = { agent: 'simulate', input: { events: 100_000, interval_ms: 50 } };

describe('agentd as an OS process', () => {
  it('refuses to start on a bad env value, naming the variable and the value', async () => {
    const { code, stderr } = await runAgentdExpectingFailure({ MAX_CONCURRENT_AGENT_RUNS: 'lots', RUN_QUEUE_TIMEOUT_MS: '-5' });
    assert.equal(code, 2);
    assert.match(stderr, /MAX_CONCURRENT_AGENT_RUNS .*"lots"/);
    assert.match(stderr, /RUN_QUEUE_TIMEOUT_MS .*"-5"/);
  });

  it('fails to start with a clear message when the database is unreachable', async () => {
    const { code, stderr } = await runAgentdExpectingFailure({ DATABASE_URL: 'postgres://postgres@127.0.0.1:1/agentd' });
    assert.equal(code, 1);
    assert.match(stderr, /cannot connect to the database at 127\.0\.0\.1:1\n {2}caused by: .*ECONNREFUSED/);
  });

  for (const storage of STORAGES) {
    describe(`on ${storage}`, () => {
      it('ends running runs `interrupted` (shutdown) on SIGTERM, and a killed instance’s runs (instance_lost) when it restarts', async () => {
        const store = await createStorageEnv(storage);
        const env = { ...store.env, ADMIN_TOKEN, INSTANCE_ID: `proc-${storage}`, SHUTDOWN_GRACE_MS: '300' };
        try {
          let agentd = await spawnAgentd(env);
          const account = await request(agentd.url, 'POST', '/v1/admin/accounts', { token: ADMIN_TOKEN, body: { name: 'p', tier: 'pro' } });
          const key = account.body.api_key as string;
          const graceful = await request(agentd.url, 'POST', '/v1/runs', { token: key, body: LONG });
          assert.equal(graceful.body.status, 'running');
          assert.equal(await agentd.kill('SIGTERM'), 0);

          agentd = await spawnAgentd(env);
          const afterTerm = await request(agentd.url, 'GET', `/v1/runs/${graceful.body.id}`, { token: key });
          assert.equal(afterTerm.body.status, 'interrupted');
          assert.equal(afterTerm.body.error.code, 'shutdown');

          const killed = await request(agentd.url, 'POST', '/v1/runs', { token: key, body: LONG });
          await agentd.kill('SIGKILL');
          agentd = await spawnAgentd(env);
          const afterKill = await waitFor(async () => {
            const res = await request(agentd.url, 'GET', `/v1/runs/${killed.body.id}`, { token: key });
            return res.body.status === 'interrupted' ? res.body : undefined;
          });
          assert.equal(afterKill.error.code, 'instance_lost');
          const capacity = await request(agentd.url, 'GET', '/v1/admin/capacity', { token: ADMIN_TOKEN });
          assert.equal(capacity.body.accounts.leases, 0);
          const next = await request(agentd.url, 'POST', '/v1/runs', { token: key, body: { agent: 'echo', input: 'again' } });
          assert.equal(next.status, 202, 'the interrupted runs released their leases');
          assert.equal(await agentd.kill('SIGTERM'), 0);
        } finally {
          await store.cleanup();
        }
      });
    });
  }
});
