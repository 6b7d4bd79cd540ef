import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startAgentd, STORAGES, type TestAgentd } from '../helpers/agentd.js';
import { unique } from '../helpers/ids.js';
import { waitFor } from '../helpers/wait-for.js';

/** A simulate run that would take minutes unless something ends it. */
const LONG = { agent: 'simulate', input: { events: 100_000, interval_ms: 50 } };

for (const storage of STORAGES) {
  describe(`run lifecycle on ${storage}`, () => {
    describe('endings', () => {
      let agentd: TestAgentd;
      let key: string;
      before(async () => {
        agentd = await startAgentd(storage, {
          TIER_LIMITS: 'free:1,pro:5,bulk:1000',
          MAX_EVENTS_PER_RUN: '5',
          MAX_EVENT_BYTES: '1024',
        });
        key = (await agentd.createAccount('bulk')).apiKey;
      });
      after(async () => {
        await agentd.waitForIdle();
        await agentd.close();
      });

      const start = async (body: unknown) => {
        const res = await agentd.as(key, 'POST', '/v1/runs', { body });
        assert.equal(res.status, 202, res.text);
        return res.body.id as string;
      };

      it('completes a simulate run', async () => {
        const run = await agentd.waitForEnd(key, await start({ agent: 'simulate', input: { events: 3, interval_ms: 1 } }));
        assert.equal(run.status, 'completed');
        assert.equal(run.error, undefined);
      });

      it('fails with agent_error when the agent throws', async () => {
        const run = await agentd.waitForEnd(key, await start({ agent: 'simulate', input: { events: 3, interval_ms: 1, fail_at: 1 } }));
        assert.equal(run.status, 'failed');
        assert.equal(run.error.code, 'agent_error');
        assert.match(run.error.message, /event 1/);
      });

      it('times out with code timeout, counted from running', async () => {
        const run = await agentd.waitForEnd(key, await start({ ...LONG, timeout_ms: 100 }));
        assert.equal(run.status, 'timed_out');
        assert.equal(run.error.code, 'timeout');
      });

      it('times out an agent that ignores its AbortSignal', async () => {
        const id = await start({ agent: 'simulate', input: { events: 3, interval_ms: 2_000, ignore_cancel: true }, timeout_ms: 100 });
        const run = await agentd.waitForEnd(key, id);
        assert.equal(run.status, 'timed_out');
      });

      it('cancels a running run, idempotently', async () => {
        const id = await start(LONG);
        await waitFor(async () => (await agentd.as(key, 'GET', `/v1/runs/${id}`)).body.status === 'running');
        const cancel = await agentd.as(key, 'POST', `/v1/runs/${id}/cancel`);
        assert.equal(cancel.status, 202);
        assert.deepEqual(cancel.body, { id, status: 'cancelled' });
        const again = await agentd.as(key, 'POST', `/v1/runs/${id}/cancel`);
        assert.deepEqual(again.body, { id, status: 'cancelled' });
        assert.equal((await agentd.waitForEnd(key, id)).status, 'cancelled');
      });

      it('cancels an agent that ignores its AbortSignal and frees its slot', async () => {
        const id = await start({ agent: 'simulate', input: { events: 5, interval_ms: 1_000, ignore_cancel: true } });
        const cancel = await agentd.as(key, 'POST', `/v1/runs/${id}/cancel`);
        assert.equal(cancel.body.status, 'cancelled');
        const capacity = await agentd.waitForIdle();
        assert.ok(!capacity.runs.holders.includes(id));
        // Its run is over, but the agent goes on until its last event: shown, then gone.
        assert.ok(capacity.runs.lingering_agents >= 1, `lingering agents: ${capacity.runs.lingering_agents}`);
        await waitFor(async () => (await agentd.admin('GET', '/v1/admin/capacity')).body.runs.lingering_agents === 0, {
          what: 'the agent that ignored its cancel to stop',
        });
      });

      it('leaves a finished run unchanged on cancel', async () => {
        const id = await start({ agent: 'echo', input: 'done' });
        await agentd.waitForEnd(key, id);
        const cancel = await agentd.as(key, 'POST', `/v1/runs/${id}/cancel`);
        assert.deepEqual(cancel.body, { id, status: 'completed' });
      });

      it('fails with event_limit past MAX_EVENTS_PER_RUN', async () => {
        const run = await agentd.waitForEnd(key, await start({ agent: 'simulate', input: { events: 10, interval_ms: 0 } }));
        assert.equal(run.status, 'failed');
        assert.equal(run.error.code, 'event_limit');
        assert.match(run.error.message, /MAX_EVENTS_PER_RUN/);
      });

      it('fails with event_limit for an event over MAX_EVENT_BYTES', async () => {
        const run = await agentd.waitForEnd(key, await start({ agent: 'simulate', input: { events: 1, payload_bytes: 2_000 } }));
        assert.equal(run.status, 'failed');
        assert.equal(run.error.code, 'event_limit');
        assert.match(run.error.message, /MAX_EVENT_BYTES/);
      });
    });

    describe('account and session limits', () => {
      let agentd: TestAgentd;
      before(async () => {
        agentd = await startAgentd(storage, { SESSION_MAX_INFLIGHT: '1' });
      });
      after(async () => {
        await agentd.waitForIdle();
        await agentd.close();
      });

      it('admits one run for a free account, 429 with limit and active for the next, then admits again', async () => {
        const { apiKey } = await agentd.createAccount('free');
        const first = await agentd.as(apiKey, 'POST', '/v1/runs', { body: LONG });
        assert.equal(first.status, 202);
        const second = await agentd.as(apiKey, 'POST', '/v1/runs', { body: { agent: 'echo' } });
        assert.equal(second.status, 429);
        assert.equal(second.body.error.code, 'account_concurrency_limit');
        assert.equal(second.body.error.limit, 1);
        assert.equal(second.body.error.active, 1);
        await agentd.as(apiKey, 'POST', `/v1/runs/${first.body.id}/cancel`);
        const third = await agentd.as(apiKey, 'POST', '/v1/runs', { body: { agent: 'echo' } });
        assert.equal(third.status, 202);
        await agentd.waitForEnd(apiKey, third.body.id);
      });

      it('shows the account and session limiters with their holders in the capacity view', async () => {
        const account = await agentd.createAccount('pro');
        const run = await agentd.as(account.apiKey, 'POST', '/v1/runs', { body: { ...LONG, session_id: 'cap' } });
        const capacity = await agentd.admin('GET', '/v1/admin/capacity');
        assert.deepEqual(capacity.body.accounts.limits[account.id], {
          name: 'acme',
          tier: 'pro',
          limit: 5,
          in_use: 1,
          queued: 0,
          holders: [run.body.id],
        });
        assert.deepEqual(capacity.body.sessions.limits[`${account.id}/cap`], { limit: 1, in_use: 1, queued: 0, holders: [run.body.id] });
        await agentd.as(account.apiKey, 'POST', `/v1/runs/${run.body.id}/cancel`);
        const after = await agentd.admin('GET', '/v1/admin/capacity');
        assert.equal(after.body.accounts.limits[account.id], undefined);
      });

      it('applies a tier change to the next admission', async () => {
        const account = await agentd.createAccount('free');
        const first = await agentd.as(account.apiKey, 'POST', '/v1/runs', { body: LONG });
        await agentd.admin('PATCH', `/v1/admin/accounts/${account.id}`, { body: { tier: 'pro' } });
        const second = await agentd.as(account.apiKey, 'POST', '/v1/runs', { body: { agent: 'echo' } });
        assert.equal(second.status, 202);
        await agentd.as(account.apiKey, 'POST', `/v1/runs/${first.body.id}/cancel`);
        await agentd.waitForEnd(account.apiKey, second.body.id);
      });

      it('limits a session to SESSION_MAX_INFLIGHT, scoped to the account', async () => {
        const a = await agentd.createAccount('pro');
        const b = await agentd.createAccount('pro');
        const first = await agentd.as(a.apiKey, 'POST', '/v1/runs', { body: { ...LONG, session_id: 'chat-1' } });
        const same = await agentd.as(a.apiKey, 'POST', '/v1/runs', { body: { agent: 'echo', session_id: 'chat-1' } });
        assert.equal(same.status, 429);
        assert.equal(same.body.error.code, 'session_concurrency_limit');
        const otherSession = await agentd.as(a.apiKey, 'POST', '/v1/runs', { body: { agent: 'echo', session_id: 'chat-2' } });
        const otherAccount = await agentd.as(b.apiKey, 'POST', '/v1/runs', { body: { agent: 'echo', session_id: 'chat-1' } });
        assert.equal(otherSession.status, 202);
        assert.equal(otherAccount.status, 202);
        await agentd.as(a.apiKey, 'POST', `/v1/runs/${first.body.id}/cancel`);
        await agentd.waitForEnd(a.apiKey, otherSession.body.id);
        await agentd.waitForEnd(b.apiKey, otherAccount.body.id);
      });
    });

    describe('run slots and the wait queue', () => {
      let agentd: TestAgentd;
      let key: string;
      before(async () => {
        agentd = await startAgentd(storage, {
          MAX_CONCURRENT_AGENT_RUNS: '1',
          RUN_QUEUE_MAX: '1',
          RUN_QUEUE_TIMEOUT_MS: '300',
          TIER_LIMITS: 'bulk:1000',
        });
        key = (await agentd.createAccount('bulk')).apiKey;
      });
      after(async () => {
        await agentd.waitForIdle();
        await agentd.close();
      });

      it('takes the env override of the run slots', async () => {
        const capacity = await agentd.admin('GET', '/v1/admin/capacity');
        assert.deepEqual(capacity.body.limits.MAX_CONCURRENT_AGENT_RUNS, { value: 1, source: 'env' });
        assert.deepEqual(capacity.body.limits.RUN_QUEUE_MAX, { value: 1, source: 'env' });
      });

      it('queues, refuses with 503 capacity_exhausted and Retry-After, and fails a run that waits too long', async () => {
        const running = await agentd.as(key, 'POST', '/v1/runs', { body: LONG });
        assert.equal(running.body.status, 'running');
        const queued = await agentd.as(key, 'POST', '/v1/runs', { body: { agent: 'echo' } });
        assert.equal(queued.status, 202);
        assert.equal(queued.body.status, 'queued');
        const refused = await agentd.as(key, 'POST', '/v1/runs', { body: { agent: 'echo' } });
        assert.equal(refused.status, 503);
        assert.equal(refused.body.error.code, 'capacity_exhausted');
        assert.ok(Number(refused.headers.get('retry-after')) >= 1);
        const capacity = await agentd.admin('GET', '/v1/admin/capacity');
        assert.deepEqual(capacity.body.runs.holders, [running.body.id]);
        assert.deepEqual(capacity.body.runs.waiting, [queued.body.id]);
        const timedOut = await agentd.waitForEnd(key, queued.body.id);
        assert.equal(timedOut.status, 'failed');
        assert.equal(timedOut.error.code, 'capacity_exhausted');
        assert.equal(timedOut.started_at, null);
        await agentd.as(key, 'POST', `/v1/runs/${running.body.id}/cancel`);
        const list = await agentd.as(key, 'GET', '/v1/runs?limit=200');
        assert.equal(list.body.runs.length, 2, 'the refused request created nothing');
      });

      it('answers a retried request (same Idempotency-Key) with its first run even when full', async () => {
        const headers = { 'idempotency-key': unique('full') };
        const first = await agentd.as(key, 'POST', '/v1/runs', { body: LONG, headers });
        const filler = await agentd.as(key, 'POST', '/v1/runs', { body: { agent: 'echo' } });
        assert.equal(filler.body.status, 'queued', 'slot and queue are now full');
        const retry = await agentd.as(key, 'POST', '/v1/runs', { body: LONG, headers });
        assert.equal(retry.status, 202, retry.text);
        assert.equal(retry.body.id, first.body.id);
        const other = await agentd.as(key, 'POST', '/v1/runs', { body: LONG });
        assert.equal(other.status, 503);
        await agentd.as(key, 'POST', `/v1/runs/${first.body.id}/cancel`);
        await agentd.waitForEnd(key, filler.body.id);
      });

      it('cancels a queued run, and starts a queued run when the slot frees', async () => {
        const running = await agentd.as(key, 'POST', '/v1/runs', { body: LONG });
        const doomed = await agentd.as(key, 'POST', '/v1/runs', { body: { agent: 'echo' } });
        assert.equal(doomed.body.status, 'queued');
        const cancel = await agentd.as(key, 'POST', `/v1/runs/${doomed.body.id}/cancel`);
        assert.equal(cancel.body.status, 'cancelled');
        const waiting = await agentd.as(key, 'POST', '/v1/runs', { body: { agent: 'echo', input: 'after' } });
        assert.equal(waiting.body.status, 'queued');
        await agentd.as(key, 'POST', `/v1/runs/${running.body.id}/cancel`);
        const run = await agentd.waitForEnd(key, waiting.body.id);
        assert.equal(run.status, 'completed');
        assert.deepEqual(run.output, { role: 'assistant', content: 'after' });
        assert.ok(run.started_at !== null);
      });
    });
  });
}
