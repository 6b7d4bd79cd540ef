import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from '../helpers/http.js';
import { ADMIN_TOKEN, startAgentd, STORAGES, type TestAgentd } from '../helpers/agentd.js';
import { unique } from '../helpers/ids.js';

for (const storage of STORAGES) {
  describe(`HTTP API on ${storage}`, () => {
    let agentd: TestAgentd;
    let acme: { id: string; apiKey: string; prefix: string };
    let other: { id: string; apiKey: string; prefix: string };

    before(async () => {
      agentd = await startAgentd(storage, { MAX_BODY_BYTES: '4096' });
      acme = await agentd.createAccount('pro', 'acme');
      other = await agentd.createAccount('pro', 'other');
    });
    after(async () => {
      await agentd.waitForIdle();
      await agentd.close();
    });

    describe('operations', () => {
      it('answers /healthz and /readyz', async () => {
        assert.deepEqual((await request(agentd.url, 'GET', '/healthz')).body, { status: 'ok' });
        const ready = await request(agentd.url, 'GET', '/readyz');
        assert.equal(ready.status, 200);
      });

      it('serves Prometheus metrics with the run-slot gauges', async () => {
        const res = await request(agentd.url, 'GET', '/metrics');
        assert.equal(res.status, 200);
        assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
        assert.match(res.text, /^agentd_run_slots_in_use \d+$/m);
        assert.doesNotMatch(res.text, new RegExp(acme.id));
      });

      it('reports sizing with the source of every limit', async () => {
        const res = await agentd.admin('GET', '/v1/admin/capacity');
        assert.equal(res.status, 200);
        assert.ok(res.body.detected.cpus >= 1);
        assert.ok(res.body.detected.memory_bytes > 0);
        assert.equal(res.body.limits.MAX_CONCURRENT_AGENT_RUNS.source, 'auto');
        assert.equal(res.body.limits.MAX_BODY_BYTES, undefined);
        assert.equal(res.body.runs.capacity, res.body.limits.MAX_CONCURRENT_AGENT_RUNS.value);
        assert.equal(res.body.db_pool.max, res.body.limits.DB_MAX_CONNECTIONS.value);
      });

      it('answers unknown routes with 404 not_found', async () => {
        const res = await request(agentd.url, 'GET', '/nope');
        assert.equal(res.status, 404);
        assert.equal(res.body.error.code, 'not_found');
        const admin = await agentd.admin('GET', '/v1/admin/nope');
        assert.equal(admin.status, 404);
      });
    });

    describe('accounts and keys', () => {
      it('creates an account whose key is shown once, with its prefix', async () => {
        const res = await agentd.admin('POST', '/v1/admin/accounts', { body: { name: 'new', tier: 'free' } });
        assert.equal(res.status, 201);
        assert.equal(res.body.tier, 'free');
        assert.ok(res.body.api_key.length >= 43, 'at least 32 random bytes');
        assert.equal(res.body.key_prefix, res.body.api_key.slice(0, 8));
        const shown = await agentd.admin('GET', `/v1/admin/accounts/${res.body.id}`);
        assert.deepEqual(
          shown.body.keys.map((k: { key_prefix: string }) => k.key_prefix),
          [res.body.key_prefix],
        );
        assert.doesNotMatch(shown.text, new RegExp(res.body.api_key.replace(/[-_]/g, '.')));
      });

      it('refuses an unknown tier and a bad name', async () => {
        const tier = await agentd.admin('POST', '/v1/admin/accounts', { body: { name: 'x', tier: 'platinum' } });
        assert.equal(tier.status, 400);
        assert.equal(tier.body.error.code, 'invalid_request');
        assert.equal(tier.body.error.field, 'tier');
        const name = await agentd.admin('POST', '/v1/admin/accounts', { body: { name: 42, tier: 'free' } });
        assert.equal(name.body.error.field, 'name');
      });

      it('changes the tier', async () => {
        const account = await agentd.createAccount('free', 'upgrader');
        const res = await agentd.admin('PATCH', `/v1/admin/accounts/${account.id}`, { body: { tier: 'enterprise' } });
        assert.equal(res.status, 200);
        assert.equal(res.body.tier, 'enterprise');
        const missing = await agentd.admin('PATCH', '/v1/admin/accounts/00000000-0000-4000-8000-000000000000', { body: { tier: 'pro' } });
        assert.equal(missing.status, 404);
      });

      it('issues a second key and revokes one by prefix', async () => {
        const account = await agentd.createAccount('pro', 'keys');
        const second = await agentd.admin('POST', `/v1/admin/accounts/${account.id}/keys`);
        assert.equal(second.status, 201);
        assert.equal((await agentd.as(second.body.api_key, 'GET', '/v1/agents')).status, 200);
        const revoked = await agentd.admin('DELETE', `/v1/admin/keys/${account.prefix}`);
        assert.equal(revoked.status, 200);
        assert.equal((await agentd.as(account.apiKey, 'GET', '/v1/agents')).status, 401);
        assert.equal((await agentd.as(second.body.api_key, 'GET', '/v1/agents')).status, 200);
        assert.equal((await agentd.admin('DELETE', `/v1/admin/keys/${account.prefix}`)).status, 404);
      });

      it('refuses admin routes without the admin token, and an API key is no admin token', async () => {
        assert.equal((await request(agentd.url, 'GET', '/v1/admin/capacity')).status, 401);
        assert.equal((await agentd.as(acme.apiKey, 'GET', '/v1/admin/capacity')).status, 401);
        assert.equal((await agentd.as(`${ADMIN_TOKEN}x`, 'GET', '/v1/admin/capacity')).status, 401);
      });
    });

    describe('authentication', () => {
      it('answers 401 unauthorized without a key or with a wrong one', async () => {
        for (const token of [undefined, 'wrong-key', acme.apiKey.slice(0, -1)]) {
          const res = await request(agentd.url, 'GET', '/v1/runs', token === undefined ? {} : { token });
          assert.equal(res.status, 401);
          assert.equal(res.body.error.code, 'unauthorized');
        }
      });
    });

    describe('runs', () => {
      it('lists the built-in agents with their input schemas', async () => {
        const res = await agentd.as(acme.apiKey, 'GET', '/v1/agents');
        const names = res.body.agents.map((a: { name: string }) => a.name);
        assert.ok(names.includes('echo') && names.includes('simulate'));
        const simulate = res.body.agents.find((a: { name: string }) => a.name === 'simulate');
        assert.equal(simulate.input_schema.properties.events.maximum, 100_000);
      });

      it('runs echo to completion with its message as output', async () => {
        const res = await agentd.as(acme.apiKey, 'POST', '/v1/runs', { body: { agent: 'echo', input: { hello: 'world' } } });
        assert.equal(res.status, 202);
        assert.ok(['running', 'queued'].includes(res.body.status));
        assert.equal(res.body.events_url, `/v1/runs/${res.body.id}/events`);
        const run = await agentd.waitForEnd(acme.apiKey, res.body.id);
        assert.equal(run.status, 'completed');
        assert.deepEqual(run.output, { role: 'assistant', content: { hello: 'world' } });
        assert.ok(run.started_at && run.finished_at && run.created_at);
        assert.equal(run.instance_id, agentd.server.instanceId);
      });

      it("hides another account's run behind 404", async () => {
        const res = await agentd.as(acme.apiKey, 'POST', '/v1/runs', { body: { agent: 'echo', input: 1 } });
        await agentd.waitForEnd(acme.apiKey, res.body.id);
        for (const [method, path] of [
          ['GET', `/v1/runs/${res.body.id}`],
          ['POST', `/v1/runs/${res.body.id}/cancel`],
        ] as const) {
          const theirs = await agentd.as(other.apiKey, method, path);
          assert.equal(theirs.status, 404);
          assert.equal(theirs.body.error.code, 'not_found');
        }
        const list = await agentd.as(other.apiKey, 'GET', '/v1/runs');
        assert.ok(!list.body.runs.some((r: { id: string }) => r.id === res.body.id));
      });

      it('answers a malformed id with 404', async () => {
        const res = await agentd.as(acme.apiKey, 'GET', '/v1/runs/not-a-uuid');
        assert.equal(res.status, 404);
        assert.equal(res.body.error.code, 'not_found');
      });

      it('returns the first run for a repeated Idempotency-Key with the same body', async () => {
        const headers = { 'idempotency-key': unique('key') };
        const first = await agentd.as(acme.apiKey, 'POST', '/v1/runs', { body: { agent: 'echo', input: 'a' }, headers });
        const again = await agentd.as(acme.apiKey, 'POST', '/v1/runs', { body: { agent: 'echo', input: 'a' }, headers });
        assert.equal(first.status, 202);
        assert.equal(again.status, 202);
        assert.equal(again.body.id, first.body.id);
        const theirs = await agentd.as(other.apiKey, 'POST', '/v1/runs', { body: { agent: 'echo' }, headers });
        assert.notEqual(theirs.body.id, first.body.id);
        await agentd.waitForEnd(acme.apiKey, first.body.id);
        await agentd.waitForEnd(other.apiKey, theirs.body.id);
      });

      it('lists runs newest first with filters and an opaque cursor', async () => {
        const account = await agentd.createAccount('enterprise', 'lister');
        const ids: string[] = [];
        for (let i = 0; i < 5; i += 1) {
          const res = await agentd.as(account.apiKey, 'POST', '/v1/runs', { body: { agent: 'echo', input: i, session_id: `s${i % 2}` } });
          ids.push(res.body.id);
          await agentd.waitForEnd(account.apiKey, res.body.id);
        }
        const seen: string[] = [];
        let cursor: string | null = null;
        do {
          const page: { body: { runs: Array<{ id: string }>; next_cursor: string | null } } = await agentd.as(
            account.apiKey,
            'GET',
            `/v1/runs?limit=2${cursor ? `&cursor=${cursor}` : ''}`,
          );
          seen.push(...page.body.runs.map((r) => r.id));
          cursor = page.body.next_cursor;
        } while (cursor !== null);
        assert.deepEqual(seen, [...ids].reverse());
        const filtered = await agentd.as(account.apiKey, 'GET', '/v1/runs?session_id=s1&status=completed&agent=echo');
        assert.deepEqual(
          filtered.body.runs.map((r: { id: string }) => r.id),
          [ids[3], ids[1]],
        );
        const bad = await agentd.as(account.apiKey, 'GET', '/v1/runs?cursor=garbage');
        assert.equal(bad.status, 400);
        assert.equal(bad.body.error.field, 'cursor');
        const tooMany = await agentd.as(account.apiKey, 'GET', '/v1/runs?limit=201');
        assert.equal(tooMany.body.error.field, 'limit');
        const badStatus = await agentd.as(account.apiKey, 'GET', '/v1/runs?status=happy');
        assert.equal(badStatus.body.error.field, 'status');
      });
    });

    describe('bad input gets a clear error and the server keeps serving', () => {
      const cases: Array<[string, { rawBody?: string; body?: unknown; headers?: Record<string, string> }, number, string, string?]> = [
        ['malformed JSON', { rawBody: '{"agent": "echo",', headers: { 'content-type': 'application/json' } }, 400, 'invalid_json'],
        ['a JSON array', { body: ['echo'] }, 400, 'invalid_request', 'body'],
        ['a JSON string', { rawBody: '"echo"', headers: { 'content-type': 'application/json' } }, 400, 'invalid_json'],
        ['no body', {}, 400, 'invalid_request', 'agent'],
        ['a missing agent', { body: { input: 1 } }, 400, 'invalid_request', 'agent'],
        ['agent of the wrong type', { body: { agent: 7 } }, 400, 'invalid_request', 'agent'],
        ['an unknown agent', { body: { agent: 'nope' } }, 400, 'unknown_agent', 'agent'],
        ['an unknown field', { body: { agent: 'echo', colour: 'red' } }, 400, 'invalid_request'],
        ['timeout_ms of the wrong type', { body: { agent: 'echo', timeout_ms: '10' } }, 400, 'invalid_request', 'timeout_ms'],
        ['timeout_ms above the maximum', { body: { agent: 'echo', timeout_ms: 3_600_001 } }, 400, 'invalid_request', 'timeout_ms'],
        ['metadata that is not an object', { body: { agent: 'echo', metadata: [1] } }, 400, 'invalid_request', 'metadata'],
        [
          'simulate input out of bounds',
          { body: { agent: 'simulate', input: { events: 100_001 } } },
          400,
          'invalid_request',
          'input.events',
        ],
        [
          'simulate input of the wrong type',
          { body: { agent: 'simulate', input: { interval_ms: 'slow' } } },
          400,
          'invalid_request',
          'input.interval_ms',
        ],
        [
          'simulate payload too big',
          { body: { agent: 'simulate', input: { payload_bytes: 65_537 } } },
          400,
          'invalid_request',
          'input.payload_bytes',
        ],
        ['a body over MAX_BODY_BYTES', { body: { agent: 'echo', input: 'x'.repeat(5000) } }, 413, 'payload_too_large'],
        ['an empty Idempotency-Key', { body: { agent: 'echo' }, headers: { 'idempotency-key': '' } }, 400, 'invalid_request'],
        ['a NUL character in the input', { body: { agent: 'echo', input: 'a\u0000b' } }, 400, 'invalid_request', 'body'],
        ['a NUL character in the session', { body: { agent: 'echo', session_id: 'a\u0000b' } }, 400, 'invalid_request', 'body'],
        ['a NUL character in metadata', { body: { agent: 'echo', metadata: { k: '\u0000' } } }, 400, 'invalid_request', 'body'],
      ];
      for (const [name, options, status, code, field] of cases) {
        it(`${name} -> ${status} ${code}`, async () => {
          const res = await agentd.as(acme.apiKey, 'POST', '/v1/runs', options);
          assert.equal(res.status, status, res.text);
          assert.equal(res.body.error.code, code);
          assert.equal(typeof res.body.error.message, 'string');
          if (field !== undefined) assert.equal(res.body.error.field, field);
          assert.doesNotMatch(res.text, /at .*\.ts:\d+/, 'no stack trace');
        });
      }

      it('refuses control characters in list filters and odd key prefixes without a 500', async () => {
        const list = await agentd.as(acme.apiKey, 'GET', '/v1/runs?session_id=%00');
        assert.equal(list.status, 400);
        assert.equal(list.body.error.field, 'session_id');
        const revoke = await agentd.admin('DELETE', '/v1/admin/keys/%00');
        assert.equal(revoke.status, 404);
      });

      it('created nothing for any refused request, and still serves', async () => {
        const list = await agentd.as(acme.apiKey, 'GET', '/v1/runs?limit=200');
        assert.ok(list.body.runs.every((r: { agent: string }) => ['echo', 'simulate'].includes(r.agent)));
        assert.ok(!list.body.runs.some((r: { input?: unknown; agent: string }) => r.agent === 'simulate'));
        assert.equal((await request(agentd.url, 'GET', '/healthz')).status, 200);
      });
    });
  });
}
