/**
 * Webhooks and POST /v1/runs/wait on Postgres and PGlite, against a local receiver that checks
 * every signature as a Standard Webhooks receiver does: each way a run ends delivers its record
 * once, a 500 is retried under the same webhook-id, a 410 fails for good, non-public targets are
 * refused at admission and (after DNS) at delivery, and a wait answers with the final record.
 */
import assert from 'node:assert/strict';
import dns from 'node:dns/promises';
import { syncBuiltinESMExports } from 'node:module';
import { after, before, describe, it } from 'node:test';
import { startAgentd, STORAGES, type TestAgentd } from '../helpers/agentd.js';
import { startWebhookReceiver, type WebhookReceiver } from '../helpers/webhook-receiver.js';
import { waitFor } from '../helpers/wait-for.js';

const SECRET = 'whsec_' + Buffer.from('agentd-webhook-test-key-0123456789').toString('base64');
/** A name only this test's DNS knows: it resolves to loopback. */
const LOOPBACK_NAME = 'hooks.agentd.test';

/** Makes `node:dns/promises` lookup resolve LOOPBACK_NAME to 127.0.0.1 (counting the lookups); returns the undo. */
function fakeDns(): { lookups: () => number; restore: () => void } {
  const real = dns.lookup;
  let lookups = 0;
  const fake = (async (host: string, options: object) => {
    if (host !== LOOPBACK_NAME) return real(host, options as never);
    lookups += 1;
    return [{ address: '127.0.0.1', family: 4 }];
  }) as typeof dns.lookup;
  dns.lookup = fake;
  syncBuiltinESMExports();
  return {
    lookups: () => lookups,
    restore: () => {
      dns.lookup = real;
      syncBuiltinESMExports();
    },
  };
}

/** The run record as GET shows it, without the delivery's own state: what the webhook carries. */
function withoutWebhook(record: Record<string, unknown>): Record<string, unknown> {
  const { webhook: _webhook, ...rest } = record;
  return rest;
}

for (const storage of STORAGES) {
  describe(`webhooks and waiting on ${storage}`, () => {
    let agentd: TestAgentd;
    let receiver: WebhookReceiver;
    let key: string;
    let dnsFake: ReturnType<typeof fakeDns>;

    before(async () => {
      dnsFake = fakeDns();
      receiver = await startWebhookReceiver(SECRET);
      agentd = await startAgentd(storage, {
        WEBHOOK_SECRET: SECRET,
        WEBHOOK_ALLOW_PRIVATE: 'true',
        WEBHOOK_RETRY_BASE_MS: '50',
        WEBHOOK_TIMEOUT_MS: '5000',
        TIER_LIMITS: 'free:1,pro:10',
      });
      key = (await agentd.createAccount('pro')).apiKey;
    });
    after(async () => {
      await agentd?.close();
      await receiver?.close();
      dnsFake?.restore();
    });

    const start = async (body: Record<string, unknown>) => {
      const res = await agentd.as(key, 'POST', '/v1/runs', { body });
      assert.equal(res.status, 202, res.text);
      return res.body.id as string;
    };
    /** The run once its delivery is over (delivered or failed). */
    const settled = (id: string) =>
      waitFor(
        async () => {
          const { body } = await agentd.as(key, 'GET', `/v1/runs/${id}`);
          return body.webhook?.state === 'pending' ? undefined : body;
        },
        { what: `the webhook of run ${id} to be delivered or fail` },
      );

    it('delivers each way a run ends exactly once, signed, with its final record', async () => {
      const hook = (label: string) => `${receiver.url}/hooks/${label}?token=secret-${label}`;
      const completed = await start({ agent: 'echo', input: 'hi', webhook: hook('completed') });
      const failed = await start({ agent: 'simulate', input: { events: 3, interval_ms: 1, fail_at: 1 }, webhook: hook('failed') });
      const timedOut = await start({
        agent: 'simulate',
        input: { events: 1000, interval_ms: 50 },
        timeout_ms: 300,
        webhook: hook('timed_out'),
      });
      const cancelled = await start({ agent: 'simulate', input: { events: 1000, interval_ms: 50 }, webhook: hook('cancelled') });
      await waitFor(async () => (await agentd.as(key, 'GET', `/v1/runs/${cancelled}`)).body.status === 'running');
      assert.equal((await agentd.as(key, 'POST', `/v1/runs/${cancelled}/cancel`)).status, 202);

      for (const [id, status] of [
        [completed, 'completed'],
        [failed, 'failed'],
        [timedOut, 'timed_out'],
        [cancelled, 'cancelled'],
      ] as const) {
        const record = await settled(id);
        assert.equal(record.status, status);
        assert.deepEqual(record.webhook, { url: hook(status), state: 'delivered', attempts: 1, last_status: 204 });
        const [delivery, ...more] = receiver.attemptsFor(id);
        assert.ok(delivery, `no delivery for the ${status} run`);
        assert.deepEqual(more, [], `a second request for the ${status} run`);
        assert.equal(delivery.verified, true);
        assert.equal(delivery.path, `/hooks/${status}?token=secret-${status}`);
        assert.ok(Math.abs(delivery.timestamp - Date.now() / 1000) < 60, 'webhook-timestamp is now, in seconds');
        assert.match(delivery.id, /^[0-9a-f-]{36}$/);
        assert.deepEqual(delivery.json, withoutWebhook(record));
      }
      assert.equal(new Set(receiver.received.map((d) => d.id)).size, receiver.received.length, 'one webhook-id per delivery');
      assert.equal(receiver.deliveredFor(completed)[0]?.json.output.content, 'hi');
    });

    it('retries a 500 under the same webhook-id and delivers once', async () => {
      receiver.answer = ({ path, attempt }) => (path.startsWith('/flaky') && attempt === 1 ? 500 : 204);
      try {
        const id = await start({ agent: 'echo', input: 'again', webhook: `${receiver.url}/flaky` });
        const record = await settled(id);
        assert.deepEqual(record.webhook, { url: `${receiver.url}/flaky`, state: 'delivered', attempts: 2, last_status: 204 });
        const attempts = receiver.attemptsFor(id);
        assert.deepEqual(
          attempts.map((d) => [d.answered, d.verified]),
          [
            [500, true],
            [204, true],
          ],
        );
        assert.equal(attempts[0]?.id, attempts[1]?.id, 'a retry keeps its webhook-id, so receivers dedupe');
        assert.equal(attempts[0]?.body, attempts[1]?.body);
      } finally {
        receiver.answer = () => 204;
      }
    });

    it('fails a delivery for good on a 410, after one attempt', async () => {
      receiver.answer = ({ path }) => (path === '/gone' ? 410 : 204);
      try {
        const id = await start({ agent: 'echo', webhook: `${receiver.url}/gone` });
        const record = await settled(id);
        assert.deepEqual(record.webhook, {
          url: `${receiver.url}/gone`,
          state: 'failed',
          attempts: 1,
          last_status: 410,
          last_error: 'the receiver answered 410',
        });
        assert.equal(receiver.attemptsFor(id).length, 1);
      } finally {
        receiver.answer = () => 204;
      }
    });

    it('connects to the address the host name resolved to, resolving once per attempt', async () => {
      const before = dnsFake.lookups();
      const url = `http://${LOOPBACK_NAME}:${receiver.port}/named`;
      const id = await start({ agent: 'echo', webhook: url });
      assert.equal((await settled(id)).webhook.state, 'delivered');
      const [delivery] = receiver.attemptsFor(id);
      assert.equal(delivery?.host, `${LOOPBACK_NAME}:${receiver.port}`, 'the Host header names the URL, not the address');
      assert.equal(dnsFake.lookups() - before, 1);
    });

    it('POST /v1/runs/wait answers a completed and a failed run with their final records', async () => {
      const done = await agentd.as(key, 'POST', '/v1/runs/wait', { body: { agent: 'echo', input: { q: 1 } } });
      assert.equal(done.status, 200, done.text);
      assert.equal(done.body.status, 'completed');
      assert.deepEqual(done.body.output, { role: 'assistant', content: { q: 1 } });
      assert.equal(done.headers.get('x-run-id'), done.body.id);
      assert.deepEqual(done.body, (await agentd.as(key, 'GET', `/v1/runs/${done.body.id}`)).body);

      const failed = await agentd.as(key, 'POST', '/v1/runs/wait', {
        body: { agent: 'simulate', input: { events: 5, interval_ms: 20, fail_at: 3 }, webhook: `${receiver.url}/waited` },
      });
      assert.equal(failed.status, 200, failed.text);
      assert.equal(failed.body.status, 'failed');
      assert.equal(failed.body.error.code, 'agent_error');
      assert.ok(failed.body.finished_at);
      assert.equal(failed.body.webhook.url, `${receiver.url}/waited`);
      assert.equal((await settled(failed.body.id)).webhook.state, 'delivered');
      await agentd.waitForIdle();
    });

    it('POST /v1/runs/wait refuses what POST /v1/runs refuses, with the same answer', async () => {
      for (const body of [
        { agent: 'nobody' },
        { agent: 'echo', timeout_ms: 0 },
        { agent: 'echo', webhook: 'ftp://x/' },
        { agent: 'echo', extra: 1 },
      ]) {
        const [posted, waited] = await Promise.all([
          agentd.as(key, 'POST', '/v1/runs', { body }),
          agentd.as(key, 'POST', '/v1/runs/wait', { body }),
        ]);
        assert.equal(posted.status, 400, posted.text);
        assert.deepEqual([waited.status, waited.body], [posted.status, posted.body]);
      }
    });

    it('a client that leaves a wait leaves its run running; the wait holds nothing after', async () => {
      const leaving = new AbortController();
      const waiting = fetch(`${agentd.url}/v1/runs/wait`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ agent: 'simulate', input: { events: 20, interval_ms: 50 }, session_id: 'leaver' }),
        signal: leaving.signal,
      }).catch((error: unknown) => error);
      const running = await waitFor(
        async () => (await agentd.as(key, 'GET', '/v1/runs?session_id=leaver&status=running')).body.runs[0] as { id: string } | undefined,
        { what: 'the waited run to run' },
      );
      const capacity = await agentd.admin('GET', '/v1/admin/capacity');
      assert.equal(capacity.body.sse.listeners, 1, 'a wait counts as a listener while it waits');
      leaving.abort();
      assert.ok((await waiting) instanceof Error);
      const ended = await agentd.waitForEnd(key, running.id);
      assert.equal(ended.status, 'completed', 'the run went on without its client');
      await agentd.waitForIdle(); // no listener, lease or slot left behind
    });
  });
}

describe('webhook targets that are not public', () => {
  let agentd: TestAgentd;
  let off: TestAgentd;
  let receiver: WebhookReceiver;
  let key: string;
  let dnsFake: ReturnType<typeof fakeDns>;

  before(async () => {
    dnsFake = fakeDns();
    receiver = await startWebhookReceiver(SECRET);
    agentd = await startAgentd('pglite', { WEBHOOK_SECRET: SECRET, WEBHOOK_RETRY_BASE_MS: '50' });
    off = await startAgentd('pglite');
    key = (await agentd.createAccount('pro')).apiKey;
  });
  after(async () => {
    await Promise.all([agentd?.close(), off?.close()]);
    await receiver?.close();
    dnsFake?.restore();
  });

  it('are refused at admission with 400 naming webhook, on every route that starts a run', async () => {
    for (const webhook of [
      `${receiver.url}/x`,
      'http://10.0.0.1/hook',
      'http://172.20.1.1/hook',
      'http://192.168.1.10/hook',
      'http://169.254.169.254/latest/meta-data/',
      'http://[::1]:8080/',
      'http://[fd00::5]/',
      'http://[fe80::1]/',
      'http://0.0.0.0/',
      'http://2130706433/',
      'http://localhost:3000/',
    ]) {
      for (const path of ['/v1/runs', '/v1/runs/wait', '/v1/runs/stream']) {
        const res = await agentd.as(key, 'POST', path, { body: { agent: 'echo', webhook } });
        assert.equal(res.status, 400, `${path} ${webhook}: ${res.text}`);
        assert.equal(res.body.error.code, 'invalid_request');
        assert.equal(res.body.error.field, 'webhook');
        assert.match(res.body.error.message, /^webhook: .*non-public address/);
      }
    }
    assert.deepEqual((await agentd.as(key, 'GET', '/v1/runs')).body.runs, [], 'no run was started');
  });

  it('are refused at delivery when a host name resolves to one, without a request', async () => {
    const url = `http://${LOOPBACK_NAME}:${receiver.port}/rebound`;
    const res = await agentd.as(key, 'POST', '/v1/runs', { body: { agent: 'echo', webhook: url } });
    assert.equal(res.status, 202, res.text);
    const record = await waitFor(
      async () => {
        const { body } = await agentd.as(key, 'GET', `/v1/runs/${res.body.id}`);
        return body.webhook.state === 'pending' ? undefined : body;
      },
      { what: 'the delivery to fail' },
    );
    assert.equal(record.webhook.state, 'failed');
    assert.equal(record.webhook.attempts, 1);
    assert.equal(record.webhook.last_status, undefined);
    assert.match(record.webhook.last_error, new RegExp(`^refused: ${LOOPBACK_NAME.replace(/\./g, '\\.')} .*non-public address`));
    assert.deepEqual(receiver.received, []);
  });

  it('and without WEBHOOK_SECRET every webhook is refused with 400', async () => {
    const offKey = (await off.createAccount('pro')).apiKey;
    const res = await off.as(offKey, 'POST', '/v1/runs', { body: { agent: 'echo', webhook: 'https://hooks.example.com/' } });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.field, 'webhook');
    assert.match(res.body.error.message, /WEBHOOK_SECRET/);
  });
});
