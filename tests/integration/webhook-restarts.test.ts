/**
 * Webhooks across real agentd processes on one Postgres and Redis, killed with real signals: a
 * delivery survives its deliverer (killed between attempts, or in the middle of one) and ends
 * with exactly one 2xx; a run swept off a dead instance delivers once too; and POST
 * /v1/runs/wait answers for a run that runs on another instance.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ADMIN_TOKEN } from '../helpers/agentd.js';
import { request } from '../helpers/http.js';
import { spawnAgentd, type AgentdProcess } from '../helpers/process.js';
import { cleanupPrefix, redisUrl, uniquePrefix } from '../helpers/redis.js';
import { createTestDatabase } from '../helpers/test-database.js';
import { waitFor } from '../helpers/wait-for.js';
import { startWebhookReceiver, type WebhookReceiver } from '../helpers/webhook-receiver.js';

const SECRET = 'a raw webhook secret, not whsec_ form';

describe('webhooks across processes that die', () => {
  let database: { url: string; drop(): Promise<void> };
  let receiver: WebhookReceiver;
  const prefix = uniquePrefix();
  const tag = `wh${process.pid}`;
  const procs: AgentdProcess[] = [];

  const spawn = async (id: string, env: Record<string, string> = {}) => {
    const proc = await spawnAgentd({
      DATABASE_URL: database.url,
      REDIS_URL: redisUrl(),
      REDIS_KEY_PREFIX: prefix,
      ADMIN_TOKEN,
      INSTANCE_ID: `${tag}-${id}`,
      INSTANCE_HEARTBEAT_MS: '300',
      WEBHOOK_SECRET: SECRET,
      WEBHOOK_ALLOW_PRIVATE: 'true',
      WEBHOOK_TIMEOUT_MS: '1000',
      WEBHOOK_RETRY_BASE_MS: '1500',
      ...env,
    });
    procs.push(proc);
    return proc;
  };
  const account = async (url: string) => {
    const res = await request(url, 'POST', '/v1/admin/accounts', { token: ADMIN_TOKEN, body: { name: 'hooks', tier: 'pro' } });
    assert.equal(res.status, 201, res.text);
    return res.body.api_key as string;
  };
  const startRun = async (url: string, key: string, body: Record<string, unknown>) => {
    const res = await request(url, 'POST', '/v1/runs', { token: key, body });
    assert.equal(res.status, 202, res.text);
    return res.body.id as string;
  };
  const delivered = (url: string, key: string, id: string) =>
    waitFor(
      async () => {
        const { body } = await request(url, 'GET', `/v1/runs/${id}`, { token: key });
        return body.webhook?.state === 'delivered' ? body : undefined;
      },
      { what: `the webhook of run ${id} to be delivered`, timeoutMs: 45_000 },
    );
  /** One 2xx, every request signed and under one webhook-id. */
  const assertDeliveredOnce = (id: string, record: Record<string, unknown>) => {
    const attempts = receiver.attemptsFor(id);
    assert.equal(receiver.deliveredFor(id).length, 1, JSON.stringify(attempts.map((a) => a.answered)));
    assert.ok(attempts.every((a) => a.verified));
    assert.equal(new Set(attempts.map((a) => a.id)).size, 1);
    const { webhook: _webhook, ...view } = record;
    assert.deepEqual(receiver.deliveredFor(id)[0]?.json, view);
  };

  before(async () => {
    database = await createTestDatabase();
    receiver = await startWebhookReceiver(SECRET);
  });
  after(async () => {
    await Promise.all(procs.map((proc) => proc.kill('SIGKILL')));
    await receiver?.close();
    await database?.drop();
    await cleanupPrefix(prefix);
  });

  it('a delivery failing when its instance is killed completes once after the restart', async () => {
    let down = true;
    receiver.answer = ({ path }) => (path === '/failing' && down ? 500 : 204);
    const a = await spawn('restart');
    const key = await account(a.url);
    const id = await startRun(a.url, key, { agent: 'echo', input: 'x', webhook: `${receiver.url}/failing` });
    await waitFor(() => receiver.attemptsFor(id).length >= 1, { what: 'a first attempt (answered 500)' });
    await a.kill('SIGKILL');
    down = false;
    const again = await spawn('restart');
    const record = await delivered(again.url, key, id);
    assert.ok(record.webhook.attempts >= 2, JSON.stringify(record.webhook));
    assertDeliveredOnce(id, record);
    await again.kill('SIGTERM');
  });

  it('a deliverer killed mid attempt: its claim is retried, by another instance once the lease runs out, or at once by its own restart', async () => {
    receiver.answer = ({ path, attempt }) => (path.startsWith('/hang') && attempt === 1 ? 'hang' : 204);
    const [a, b] = await Promise.all([spawn('hang-a'), spawn('hang-b', { WEBHOOK_SECRET: '' })]);
    const key = await account(a.url);
    // B has no secret: it delivers nothing, so A takes the first attempt.
    const id = await startRun(a.url, key, { agent: 'echo', webhook: `${receiver.url}/hang-elsewhere` });
    await waitFor(() => receiver.attemptsFor(id).length === 1, { what: 'the first attempt to hang' });
    await a.kill('SIGKILL');
    const c = await spawn('hang-c');
    const record = await delivered(c.url, key, id);
    assert.equal(record.webhook.attempts, 2);
    assertDeliveredOnce(id, record);

    // Killed mid attempt and restarted with its INSTANCE_ID: its own claims are due at once, long
    // before its lease (WEBHOOK_TIMEOUT_MS + 10 s) would run out and beyond the wait for the delivery.
    const long = { WEBHOOK_TIMEOUT_MS: '60000' };
    await c.kill('SIGTERM'); // D alone delivers from now on
    const d = await spawn('hang-d', long);
    const second = await startRun(d.url, key, { agent: 'echo', webhook: `${receiver.url}/hang-restart` });
    await waitFor(() => receiver.attemptsFor(second).length === 1, { what: 'the first attempt to hang' });
    await d.kill('SIGKILL');
    const restarted = await spawn('hang-d', long);
    const secondRecord = await delivered(restarted.url, key, second);
    assert.equal(secondRecord.webhook.attempts, 2);
    assertDeliveredOnce(second, secondRecord);
    await Promise.all([b.kill('SIGTERM'), restarted.kill('SIGTERM')]);
  });

  it('a run swept off a dead instance delivers once, as interrupted', async () => {
    receiver.answer = () => 204;
    const [a, b] = await Promise.all([spawn('sweep-a'), spawn('sweep-b')]);
    const key = await account(b.url);
    const id = await startRun(a.url, key, {
      agent: 'simulate',
      input: { events: 100_000, interval_ms: 50 },
      webhook: `${receiver.url}/swept`,
    });
    await waitFor(async () => (await request(a.url, 'GET', `/v1/runs/${id}`, { token: key })).body.status === 'running');
    await a.kill('SIGKILL');
    const record = await delivered(b.url, key, id);
    assert.equal(record.status, 'interrupted');
    assert.equal(record.error.code, 'instance_lost');
    assert.equal(record.webhook.attempts, 1);
    assertDeliveredOnce(id, record);
    await b.kill('SIGTERM');
  });

  it('POST /v1/runs/wait answers for a run on another instance (an Idempotency-Key repeat)', async () => {
    const [a, b] = await Promise.all([spawn('wait-a'), spawn('wait-b')]);
    const key = await account(a.url);
    const body = { agent: 'simulate', input: { events: 20, interval_ms: 50 } };
    const headers = { 'idempotency-key': 'wait-elsewhere' };
    const created = await request(a.url, 'POST', '/v1/runs', { token: key, body, headers });
    assert.equal(created.status, 202, created.text);
    const waited = await request(b.url, 'POST', '/v1/runs/wait', { token: key, body, headers });
    assert.equal(waited.status, 200, waited.text);
    assert.equal(waited.body.id, created.body.id);
    assert.equal(waited.body.status, 'completed');
    assert.equal(waited.body.instance_id, `${tag}-wait-a`);
    await Promise.all([a.kill('SIGTERM'), b.kill('SIGTERM')]);
  });
});
