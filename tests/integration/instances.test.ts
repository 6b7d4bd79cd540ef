/**
 * No run outlives its instance: agentd processes on one Postgres and Redis, killed with real
 * signals. A dead instance's runs are swept by a live one within 3 heartbeats plus a sweep:
 * they end `interrupted` (instance_lost), their leases go, and listeners anywhere get `end`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ADMIN_TOKEN } from '../helpers/agentd.js';
import { request } from '../helpers/http.js';
import { spawnAgentd, type AgentdProcess } from '../helpers/process.js';
import { cleanupPrefix, redisUrl, uniquePrefix } from '../helpers/redis.js';
import { readSse } from '../helpers/sse.js';
import { createTestDatabase } from '../helpers/test-database.js';
import { waitFor } from '../helpers/wait-for.js';

/** Short beats keep the test quick: an instance is dead after 3 × 300 ms of silence. */
const FAST_BEAT = '300';

describe('instances that die: their runs are swept by the live ones', () => {
  let database: { url: string; drop(): Promise<void> };
  const prefix = uniquePrefix();
  const tag = `i${process.pid}`;
  const procs: AgentdProcess[] = [];

  const spawn = async (id: string, env: Record<string, string> = {}) => {
    const proc = await spawnAgentd({
      DATABASE_URL: database.url,
      REDIS_URL: redisUrl(),
      REDIS_KEY_PREFIX: prefix,
      ADMIN_TOKEN,
      INSTANCE_ID: `${tag}-${id}`,
      INSTANCE_HEARTBEAT_MS: FAST_BEAT,
      SHUTDOWN_GRACE_MS: '60000',
      ...env,
    });
    procs.push(proc);
    return proc;
  };
  const freeAccount = async (url: string) => {
    const res = await request(url, 'POST', '/v1/admin/accounts', { token: ADMIN_TOKEN, body: { name: 'free', tier: 'free' } });
    assert.equal(res.status, 201, res.text);
    return res.body.api_key as string;
  };
  const longRun = async (url: string, key: string) => {
    const res = await request(url, 'POST', '/v1/runs', {
      token: key,
      body: { agent: 'simulate', input: { events: 100_000, interval_ms: 50 } },
    });
    assert.equal(res.status, 202, res.text);
    await waitFor(async () => (await request(url, 'GET', `/v1/runs/${res.body.id}`, { token: key })).body.status === 'running');
    return res.body.id as string;
  };
  const capacity = async (url: string) => (await request(url, 'GET', '/v1/admin/capacity', { token: ADMIN_TOKEN })).body;

  before(async () => {
    database = await createTestDatabase();
  });
  after(async () => {
    await Promise.all(procs.map((proc) => proc.kill('SIGKILL')));
    await database?.drop();
    await cleanupPrefix(prefix);
  });

  it('SIGKILL mid-run: the run ends interrupted/instance_lost, its listener elsewhere gets end, the free account can run again', async () => {
    const [a, b] = await Promise.all([spawn('kill-a'), spawn('kill-b')]);
    const key = await freeAccount(b.url);
    const id = await longRun(a.url, key);
    assert.equal(
      (await request(b.url, 'POST', '/v1/runs', { token: key, body: { agent: 'echo' } })).status,
      429,
      'a free account has one run',
    );

    let tokens = 0;
    const listening = readSse(`${b.url}/v1/runs/${id}/events`, { token: key, onEvent: (e) => (tokens += e.event === 'token' ? 1 : 0) });
    await waitFor(() => tokens > 2, { what: 'the listener on B to receive events' });
    await a.kill('SIGKILL');

    const { events } = await listening;
    const end = events.at(-1);
    assert.equal(end?.event, 'end');
    assert.deepEqual(end?.data, {
      status: 'interrupted',
      error: { code: 'instance_lost', message: 'The instance running this run stopped before it finished.' },
    });
    const run = (await request(b.url, 'GET', `/v1/runs/${id}`, { token: key })).body;
    assert.equal(run.status, 'interrupted');
    assert.equal(run.error.code, 'instance_lost');
    // The lease went with the run: the account may start another.
    const next = await request(b.url, 'POST', '/v1/runs', { token: key, body: { agent: 'echo' } });
    assert.equal(next.status, 202, next.text);
    // The swept stream ends once, in the archive too: a late reader gets the same end.
    const late = await readSse(`${b.url}/v1/runs/${id}/events`, { token: key });
    assert.deepEqual(late.events.at(-1), end);
    assert.equal(late.events.filter((e) => e.event === 'end').length, 1);
    const view = await capacity(b.url);
    const dead = view.instances.find((i: { id: string }) => i.id === `${tag}-kill-a`);
    assert.equal(dead, undefined, 'a dead instance without leases is no longer listed');
    assert.ok(view.instances.some((i: { id: string; alive: boolean }) => i.id === `${tag}-kill-b` && i.alive));
    const metrics = (await request(b.url, 'GET', '/metrics')).text;
    assert.match(metrics, /^agentd_runs_swept_total 1$/m);
    assert.match(metrics, /^agentd_instances\{state="alive"\} \d+$/m);
    await b.kill('SIGTERM');
  });

  it('a second SIGTERM exits at once, and the runs it leaves are swept', async () => {
    const [a, b] = await Promise.all([spawn('term-a'), spawn('term-b')]);
    const key = await freeAccount(b.url);
    const id = await longRun(a.url, key);
    a.child.kill('SIGTERM');
    await waitFor(async () => (await request(a.url, 'GET', '/readyz')).status === 503, { what: 'A to start draining' });
    assert.equal(await a.kill('SIGTERM'), 130);
    const run = await waitFor(
      async () => {
        const body = (await request(b.url, 'GET', `/v1/runs/${id}`, { token: key })).body;
        return body.status === 'running' ? undefined : body;
      },
      { what: 'the run to be swept' },
    );
    assert.equal(run.status, 'interrupted');
    assert.equal(run.error.code, 'instance_lost');
    await b.kill('SIGTERM');
  });

  it('cancel of a run whose instance is dead ends it from a live instance, before any sweep', async () => {
    // B beats rarely, so it does not sweep during the test; A is judged dead ~1 s after its kill.
    const [a, b] = await Promise.all([spawn('orphan-a'), spawn('orphan-b', { INSTANCE_HEARTBEAT_MS: '60000' })]);
    const key = await freeAccount(b.url);
    const id = await longRun(a.url, key);
    await a.kill('SIGKILL');
    await waitFor(
      async () => (await capacity(b.url)).instances.some((i: { id: string; alive: boolean }) => i.id === `${tag}-orphan-a` && !i.alive),
      { what: 'B to see A dead' },
    );
    const cancelled = await request(b.url, 'POST', `/v1/runs/${id}/cancel`, { token: key });
    assert.equal(cancelled.status, 202);
    assert.deepEqual(cancelled.body, { id, status: 'cancelled' });
    const { events } = await readSse(`${b.url}/v1/runs/${id}/events`, { token: key });
    assert.deepEqual(events.at(-1)?.data, { status: 'cancelled' });
    assert.equal((await request(b.url, 'POST', '/v1/runs', { token: key, body: { agent: 'echo' } })).status, 202);
    await b.kill('SIGTERM');
  });

  it('restarted under another id, a killed instance leaves nothing running; its old id is swept by the new one', async () => {
    const a = await spawn('restart-a');
    const key = await freeAccount(a.url);
    const id = await longRun(a.url, key);
    await a.kill('SIGKILL');
    const a2 = await spawn('restart-a2');
    const run = await waitFor(
      async () => {
        const body = (await request(a2.url, 'GET', `/v1/runs/${id}`, { token: key })).body;
        return body.status === 'running' ? undefined : body;
      },
      { what: 'the run to be swept by the new instance' },
    );
    assert.equal(run.status, 'interrupted');
    const view = await capacity(a2.url);
    assert.equal(
      view.instances.find((i: { id: string }) => i.id === `${tag}-restart-a`),
      undefined,
      'the old id neither lives nor holds leases',
    );
    assert.equal((await request(a2.url, 'POST', '/v1/runs', { token: key, body: { agent: 'echo' } })).status, 202);
    await a2.kill('SIGTERM');
  });
});
