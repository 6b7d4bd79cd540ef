import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startAgentd, STORAGES, type TestAgentd } from '../helpers/agentd.js';

type Ending = 'completed' | 'failed' | 'timed_out' | 'cancelled' | 'ignored_cancel';

const BODIES: Record<Ending, unknown> = {
  completed: { agent: 'echo', input: 'ok' },
  failed: { agent: 'simulate', input: { events: 5, interval_ms: 1, fail_at: 2 } },
  timed_out: { agent: 'simulate', input: { events: 1000, interval_ms: 20 }, timeout_ms: 50 },
  cancelled: { agent: 'simulate', input: { events: 1000, interval_ms: 20 } },
  // Long enough that the cancel always lands before the agent would have finished.
  ignored_cancel: { agent: 'simulate', input: { events: 3, interval_ms: 2_000, ignore_cancel: true } },
};

const EXPECTED: Record<Ending, string> = {
  completed: 'completed',
  failed: 'failed',
  timed_out: 'timed_out',
  cancelled: 'cancelled',
  ignored_cancel: 'cancelled',
};

const RUNS = 300;
const CONCURRENCY = 25;

for (const storage of STORAGES) {
  describe(`300 runs ending every way on ${storage}`, () => {
    let agentd: TestAgentd;
    before(async () => {
      // Fewer slots than concurrent clients, so runs also queue and leave the queue every way.
      agentd = await startAgentd(storage, {
        MAX_CONCURRENT_AGENT_RUNS: '10',
        RUN_QUEUE_MAX: '300',
        TIER_LIMITS: 'bulk:1000',
      });
    });
    after(() => agentd.close());

    it('leaves every limiter at zero and every run in its expected final status', async () => {
      const { apiKey } = await agentd.createAccount('bulk');
      const endings = Object.keys(BODIES) as Ending[];
      const results: Array<{ ending: Ending; status: string }> = [];
      let next = 0;
      const worker = async () => {
        while (next < RUNS) {
          const ending = endings[next % endings.length] as Ending;
          next += 1;
          const created = await agentd.as(apiKey, 'POST', '/v1/runs', { body: BODIES[ending] });
          assert.equal(created.status, 202, created.text);
          if (ending === 'cancelled' || ending === 'ignored_cancel') {
            const cancel = await agentd.as(apiKey, 'POST', `/v1/runs/${created.body.id}/cancel`);
            assert.equal(cancel.status, 202);
          }
          const run = await agentd.waitForEnd(apiKey, created.body.id);
          results.push({ ending, status: run.status });
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));

      assert.equal(results.length, RUNS);
      for (const { ending, status } of results) assert.equal(status, EXPECTED[ending], `a run meant to end ${ending}`);
      const idle = await agentd.waitForIdle();
      assert.deepEqual(idle.runs.holders, []);
      assert.deepEqual(idle.runs.waiting, []);
      assert.equal(idle.accounts.leases, 0);
    });
  });
}
