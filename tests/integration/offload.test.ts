import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startAgentd, type TestAgentd } from '../helpers/agentd.js';
import { agentsDir } from '../helpers/agents-dir.js';
import { readSse } from '../helpers/sse.js';

describe('ctx.offload: errors, the bounded queue and cancel (one thread, one queued task)', () => {
  let agentd: TestAgentd;
  let key: string;
  let agents: Awaited<ReturnType<typeof agentsDir>>;

  before(async () => {
    agents = await agentsDir();
    agentd = await startAgentd('postgres', { AGENTS_DIR: agents.dir, OFFLOAD_THREADS: '1', OFFLOAD_QUEUE_MAX: '1' });
    key = (await agentd.createAccount('enterprise')).apiKey;
  });

  after(async () => {
    await agentd.close();
    await agents.remove();
  });

  async function offload(fn: string, args: unknown, extra: Record<string, unknown> = {}) {
    const res = await agentd.as(key, 'POST', '/v1/runs', { body: { agent: 'offloader', input: { fn, args, ...extra } } });
    assert.equal(res.status, 202, res.text);
    return res.body.id as string;
  }

  /** Returns once the run has called ctx.offload (it does so in the same turn as its `offloading` event). */
  async function offloading(runId: string): Promise<void> {
    await readSse(`${agentd.url}/v1/runs/${runId}/events`, { token: key, stopWhen: (seen) => seen.some((e) => e.event === 'offloading') });
  }

  it('ctx.llm without LLM_PROVIDERS fails the run saying so', async () => {
    const res = await agentd.as(key, 'POST', '/v1/runs', { body: { agent: 'asker', input: { question: 'anyone?' } } });
    const run = await agentd.waitForEnd(key, res.body.id);
    assert.equal(run.status, 'failed');
    assert.equal(run.error.code, 'agent_error');
    assert.equal(run.error.message, 'ctx.llm: no LLM provider is configured (LLM_PROVIDERS)');
  });

  it('reports the capacity it was given', async () => {
    const capacity = await agentd.admin('GET', '/v1/admin/capacity');
    assert.deepEqual(capacity.body.limits.OFFLOAD_THREADS, { value: 1, source: 'env' });
    assert.deepEqual(capacity.body.limits.OFFLOAD_QUEUE_MAX, { value: 1, source: 'env' });
  });

  it('returns what the worker returned', async () => {
    const run = await agentd.waitForEnd(key, await offload('hashFor', { ms: 5 }));
    assert.equal(run.status, 'completed');
    assert.ok(run.output.content.rounds > 0);
  });

  it('fails the run with agent_error carrying the message thrown in the worker', async () => {
    const run = await agentd.waitForEnd(key, await offload('fail', { message: 'bad checksum in block 7' }));
    assert.equal(run.status, 'failed');
    assert.equal(run.error.code, 'agent_error');
    assert.equal(run.error.message, 'bad checksum in block 7');
    const missing = await agentd.waitForEnd(key, await offload('nope', null));
    assert.equal(missing.error.code, 'agent_error');
    assert.match(missing.error.message, /has no exported function "nope"/);
    const outside = await agentd.waitForEnd(key, await offload('hashFor', null, { module: 'lib/missing.mjs' }));
    assert.equal(outside.error.code, 'agent_error');
    assert.match(outside.error.message, /lib\/missing\.mjs/);
  });

  it('fails only the run that finds the queue full; cancel aborts a queued and a running task', async () => {
    // A holds the only thread for a minute unless its cancel stops it; B waits in the queue.
    const running = await offload('hashFor', { ms: 60_000 });
    await offloading(running);
    const queued = await offload('hashFor', { ms: 60_000 });
    await offloading(queued);

    const refused = await agentd.waitForEnd(key, await offload('hashFor', { ms: 1 }));
    assert.equal(refused.status, 'failed');
    assert.equal(refused.error.code, 'agent_error');
    assert.match(refused.error.message, /offload queue is full \(OFFLOAD_QUEUE_MAX=1/);
    // The others go on.
    assert.equal((await agentd.as(key, 'GET', `/v1/runs/${running}`)).body.status, 'running');
    assert.equal((await agentd.as(key, 'GET', `/v1/runs/${queued}`)).body.status, 'running');

    await agentd.as(key, 'POST', `/v1/runs/${queued}/cancel`);
    assert.equal((await agentd.waitForEnd(key, queued)).status, 'cancelled');
    await agentd.as(key, 'POST', `/v1/runs/${running}/cancel`);
    assert.equal((await agentd.waitForEnd(key, running)).status, 'cancelled');
    // The thread is free again within the wait (not after a minute): both tasks were stopped, not left to finish.
    const next = await agentd.waitForEnd(key, await offload('hashFor', { ms: 5 }));
    assert.equal(next.status, 'completed');
    await agentd.waitForIdle();
  });
});
