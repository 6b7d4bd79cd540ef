import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { deflateSync, gzipSync } from 'node:zlib';
import { MAX_JSON_DEPTH } from '../../src/http/json-body.js';
import { ADMIN_TOKEN, startAgentd, STORAGES, type TestAgentd } from '../helpers/agentd.js';
import type { JsonResponse } from '../helpers/http.js';
import { unique } from '../helpers/ids.js';
import { rawRequest } from '../helpers/raw-http.js';

/** The contract's error shape, with no stack trace in it. */
function assertError(res: JsonResponse, status: number, code: string, field?: string): void {
  assert.equal(res.status, status, res.text);
  assert.equal(res.headers.get('content-type')?.startsWith('application/json'), true, res.text);
  assert.equal(res.body.error.code, code, res.text);
  assert.equal(typeof res.body.error.message, 'string');
  if (field !== undefined) assert.equal(res.body.error.field, field, res.text);
  assert.doesNotMatch(res.text, /at .*\.[jt]s:\d+/, 'no stack trace');
}

const nested = (depth: number, leaf = '1') => `${'['.repeat(depth)}${leaf}${']'.repeat(depth)}`;
const cursorOf = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** A source address of its own for each test that sends 401s (the slow-down is per address). */
let nextAddress = 10;
const freshAddress = () => `127.0.0.${nextAddress++}`;

for (const storage of STORAGES) {
  describe(`bad input on ${storage}`, () => {
    let agentd: TestAgentd;
    let key: string;

    before(async () => {
      agentd = await startAgentd(storage);
      key = (await agentd.createAccount('enterprise', 'attacker')).apiKey;
    });
    after(async () => {
      await agentd.waitForIdle();
      await agentd.close();
    });

    const post = (body: string | Buffer, headers: Record<string, string> = {}, path = '/v1/runs') =>
      rawRequest(agentd.url, {
        method: 'POST',
        path,
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
        body,
      });
    const get = (path: string, headers: Record<string, string> = {}) =>
      rawRequest(agentd.url, { method: 'GET', path, headers: { authorization: `Bearer ${key}`, ...headers } });

    describe('text JSON allows and Postgres cannot store: 400 invalid_json', () => {
      const cases: Array<[string, string | Buffer]> = [
        ['a lone high surrogate in input', '{"agent": "echo", "input": "\\ud800"}'],
        ['a lone low surrogate in session_id', '{"agent": "echo", "session_id": "s\\udfff"}'],
        ['a lone surrogate as an object key', '{"agent": "echo", "metadata": {"\\ud800": 1}}'],
        ['a lone surrogate deep inside input', '{"agent": "echo", "input": {"a": [{"b": ["x", "y\\ud83d"]}]}}'],
        ['a high surrogate followed by another escape', '{"agent": "echo", "model": "\\ud800\\u0041"}'],
        ['a high surrogate followed by a plain character', '{"agent": "echo", "metadata": {"k": "\\udbffz"}}'],
        ['two high surrogates', '{"agent": "echo", "input": "\\ud83d\\ud83d"}'],
        [
          'a surrogate encoded as UTF-8 bytes',
          Buffer.concat([Buffer.from('{"agent": "echo", "input": "'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}')]),
        ],
        [
          'bytes that are not UTF-8',
          Buffer.concat([Buffer.from('{"agent": "echo", "input": "'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]),
        ],
        ['nesting 10,000 deep in input', `{"agent": "echo", "input": ${nested(10_000)}}`],
        ['objects nested 10,000 deep in metadata', `{"agent": "echo", "metadata": ${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}}`],
        [`nesting one deeper than ${MAX_JSON_DEPTH}`, `{"agent": "echo", "input": ${nested(MAX_JSON_DEPTH)}}`],
      ];
      for (const [name, body] of cases) {
        it(name, async () => {
          assertError(await post(body), 400, 'invalid_json');
        });
      }
    });

    describe('look-alikes that are fine: 202 and stored as sent', () => {
      const cases: Array<[string, string, unknown]> = [
        ['a surrogate pair', '{"agent": "echo", "input": "\\ud83d\\ude00 and \\uD83D\\uDE00"}', '\u{1F600} and \u{1F600}'],
        ['an escaped backslash before u-d-8-0-0', '{"agent": "echo", "input": "\\\\ud800 and \\\\u0000"}', '\\ud800 and \\u0000'],
        ['brackets inside a string', `{"agent": "echo", "input": "${'['.repeat(10_000)}"}`, '['.repeat(10_000)],
        [
          `nesting exactly ${MAX_JSON_DEPTH} deep`,
          `{"agent": "echo", "input": ${nested(MAX_JSON_DEPTH - 1, '"deep"')}}`,
          JSON.parse(nested(MAX_JSON_DEPTH - 1, '"deep"')),
        ],
      ];
      for (const [name, body, input] of cases) {
        it(name, async () => {
          const res = await post(body);
          assert.equal(res.status, 202, res.text);
          const run = await agentd.waitForEnd(key, res.body.id);
          assert.equal(run.status, 'completed');
          assert.deepEqual(run.output, { role: 'assistant', content: input });
        });
      }
    });

    describe('Content-Encoding: only identity is accepted', () => {
      const plain = '{"agent": "echo", "input": "zipped"}';
      const cases: Array<[string, string, string | Buffer]> = [
        ['gzip on a plain body', 'gzip', plain],
        ['gzip on a gzipped body', 'gzip', gzipSync(plain)],
        ['deflate', 'deflate', deflateSync(plain)],
        ['br', 'br', plain],
        ['a list of encodings', 'identity, gzip', plain],
      ];
      for (const [name, encoding, body] of cases) {
        it(`${name} -> 415 unsupported_media_type`, async () => {
          assertError(await post(body, { 'content-encoding': encoding }), 415, 'unsupported_media_type');
        });
      }

      it('identity -> 202', async () => {
        const res = await post(plain, { 'content-encoding': 'identity' });
        assert.equal(res.status, 202, res.text);
        assert.equal((await agentd.waitForEnd(key, res.body.id)).status, 'completed');
      });
    });

    describe('query and path parameters are checked before the database', () => {
      const id = randomUUID();
      const badCursors: Array<[string, string]> = [
        ['a year past 9999 (expanded)', cursorOf(['+010000-01-01T00:00:00.000Z', id])],
        ['a year past 9999', cursorOf(['10000-01-01T00:00:00.000Z', id])],
        ['a negative year', cursorOf(['-000001-01-01T00:00:00.000Z', id])],
        ['year zero', cursorOf(['0000-01-01T00:00:00.000Z', id])],
        ['a day that does not exist', cursorOf(['2024-02-30T00:00:00.000Z', id])],
        ['a date in another format', cursorOf(['2024-01-01 00:00:00+00', id])],
        ['a malformed id', cursorOf(['2024-01-01T00:00:00.000Z', 'not-a-uuid'])],
        ['a third element', cursorOf(['2024-01-01T00:00:00.000Z', id, 1])],
        ['an object', cursorOf({ created_at: '2024-01-01T00:00:00.000Z', id })],
        ['not base64 JSON', 'garbage'],
        ['empty', ''],
      ];
      for (const [name, cursor] of badCursors) {
        it(`a cursor with ${name} -> 400 naming cursor`, async () => {
          assertError(await get(`/v1/runs?cursor=${cursor}`), 400, 'invalid_request', 'cursor');
        });
      }

      it('cursors at the ends of the range the server can write still work', async () => {
        const oldest = await get(`/v1/runs?cursor=${cursorOf(['0001-01-01T00:00:00.000Z', id])}`);
        assert.equal(oldest.status, 200, oldest.text);
        assert.deepEqual(oldest.body.runs, []);
        const newest = await get(`/v1/runs?limit=1&cursor=${cursorOf(['9999-12-31T23:59:59.999Z', id])}`);
        assert.equal(newest.status, 200, newest.text);
        assert.equal(newest.body.runs.length, 1);
      });

      const badQueries: Array<[string, string, string]> = [
        ['a limit that is not a number', '/v1/runs?limit=ten', 'limit'],
        ['a limit of zero', '/v1/runs?limit=0', 'limit'],
        ['a repeated limit', '/v1/runs?limit=1&limit=2', 'limit'],
        ['a repeated status', '/v1/runs?status=running&status=queued', 'status'],
        ['an agent filter too long', `/v1/runs?agent=${'a'.repeat(101)}`, 'agent'],
        ['a session filter with a control character', '/v1/runs?session_id=a%01b', 'session_id'],
      ];
      for (const [name, path, field] of badQueries) {
        it(`${name} -> 400 naming ${field}`, async () => {
          assertError(await get(path), 400, 'invalid_request', field);
        });
      }

      it('a malformed Last-Event-ID or after on an existing run -> 400 naming it', async () => {
        const run = await post('{"agent": "echo"}');
        await agentd.waitForEnd(key, run.body.id);
        assertError(await get(`/v1/runs/${run.body.id}/events`, { 'last-event-id': 'x-1' }), 400, 'invalid_request', 'Last-Event-ID');
        assertError(await get(`/v1/runs/${run.body.id}/events?after=${'9'.repeat(16)}-0`), 400, 'invalid_request', 'after');
      });

      it('an Idempotency-Key longer than 200 characters -> 400 naming it', async () => {
        assertError(await post('{"agent": "echo"}', { 'idempotency-key': 'k'.repeat(201) }), 400, 'invalid_request', 'Idempotency-Key');
      });

      const badPaths: Array<[string, string, string]> = [
        ['GET', 'a malformed run id', '/v1/runs/not-a-uuid'],
        ['GET', 'a run id that is not percent-decodable', '/v1/runs/%E0%A4%A'],
        ['POST', 'a malformed run id to cancel', '/v1/runs/123/cancel'],
        ['GET', 'a malformed run id for events', '/v1/runs/%ZZ/events'],
        ['GET', 'a malformed account id (admin)', '/v1/admin/accounts/%E0%A4%A'],
        ['DELETE', 'a malformed key prefix (admin)', '/v1/admin/keys/%E0%A4%A'],
      ];
      for (const [method, name, path] of badPaths) {
        it(`${name} -> 404 not_found`, async () => {
          const token = path.startsWith('/v1/admin') ? ADMIN_TOKEN : key;
          assertError(await rawRequest(agentd.url, { method, path, headers: { authorization: `Bearer ${token}` } }), 404, 'not_found');
        });
      }
    });

    describe('authentication comes before the body', () => {
      const bodies: Array<[string, string | Buffer, Record<string, string>]> = [
        ['malformed JSON', '{"agent": ', {}],
        ['a lone surrogate', '{"agent": "echo", "input": "\\ud800"}', {}],
        ['nesting 10,000 deep', nested(10_000), {}],
        ['a gzip Content-Encoding', '{"agent": "echo"}', { 'content-encoding': 'gzip' }],
        ['a NUL character', '{"agent": "echo", "input": "\\u0000"}', {}],
      ];
      const callers: Array<[string, string, string, Record<string, string>]> = [
        ['no key', 'POST', '/v1/runs', {}],
        ['a wrong key', 'POST', '/v1/runs', { authorization: 'Bearer wrong-key' }],
        ['no key (stream)', 'POST', '/v1/runs/stream', {}],
        ['no admin token', 'POST', '/v1/admin/accounts', {}],
        ['an API key as admin token', 'PATCH', `/v1/admin/accounts/${randomUUID()}`, { authorization: 'Bearer not-the-admin-token' }],
      ];
      for (const [bodyName, body, bodyHeaders] of bodies) {
        it(`${bodyName} without valid credentials -> 401 on every route`, async () => {
          const localAddress = freshAddress();
          for (const [who, method, path, auth] of callers) {
            const res = await rawRequest(agentd.url, {
              method,
              path,
              headers: { 'content-type': 'application/json', ...bodyHeaders, ...auth },
              body,
              localAddress,
            });
            assert.equal(res.status, 401, `${who} ${method} ${path}: ${res.text}`);
            assertError(res, 401, 'unauthorized');
          }
        });
      }

      it('401s for malformed bodies are slowed like any other 401', async () => {
        const localAddress = freshAddress();
        const unauthenticated = () =>
          rawRequest(agentd.url, {
            method: 'POST',
            path: '/v1/runs',
            headers: { 'content-type': 'application/json' },
            body: '{"agent": ',
            localAddress,
          });
        // AuthThrottle: 5 failures per address answer at once, each further one waits 250 ms more.
        for (let i = 0; i < 5; i += 1) assert.equal((await unauthenticated()).status, 401);
        const startedAt = performance.now();
        assert.equal((await unauthenticated()).status, 401);
        const waitedMs = performance.now() - startedAt;
        assert.ok(waitedMs >= 200, `the sixth 401 from one address waited ${waitedMs.toFixed(0)} ms`);
      });

      it('with valid credentials the same bodies get their 4xx', async () => {
        assertError(await post('{"agent": '), 400, 'invalid_json');
        assertError(await post('{"agent": "echo"}', { 'content-encoding': 'gzip' }), 415, 'unsupported_media_type');
        const admin = await rawRequest(agentd.url, {
          method: 'POST',
          path: '/v1/admin/accounts',
          headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
          body: '{"name": "\\udc00", "tier": "free"}',
        });
        assertError(admin, 400, 'invalid_json');
      });
    });

    describe('Idempotency-Key', () => {
      /** A fresh account (its runs are this test's alone), and a poster with its key. */
      async function account() {
        const { apiKey } = await agentd.createAccount('enterprise', unique('idem'));
        const send = (body: unknown, idempotencyKey: string) =>
          rawRequest(agentd.url, {
            method: 'POST',
            path: '/v1/runs',
            headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json', 'idempotency-key': idempotencyKey },
            body: typeof body === 'string' ? body : JSON.stringify(body),
          });
        const runIds = async () =>
          ((await agentd.as(apiKey, 'GET', '/v1/runs?limit=200')).body.runs as Array<{ id: string }>).map((r) => r.id);
        return { apiKey, send, runIds };
      }

      it('the same body again gets the first run (202), whatever its key order and spelling', async () => {
        const { apiKey, send, runIds } = await account();
        const k = unique('key');
        const first = await send({ agent: 'echo', input: { a: 1, b: [1, 2] }, metadata: { x: 'y' } }, k);
        assert.equal(first.status, 202, first.text);
        for (const again of [
          { agent: 'echo', input: { a: 1, b: [1, 2] }, metadata: { x: 'y' } },
          '{"metadata": {"x": "y"}, "input": {"b": [1.0, 2], "a": 1}, "agent": "echo", "session_id": null, "model": null}',
        ]) {
          const res = await send(again, k);
          assert.equal(res.status, 202, res.text);
          assert.equal(res.body.id, first.body.id);
        }
        await agentd.waitForEnd(apiKey, first.body.id);
        const afterEnd = await send({ agent: 'echo', input: { a: 1, b: [1, 2] }, metadata: { x: 'y' } }, k);
        assert.equal(afterEnd.body.id, first.body.id, 'the key still names the run after it ended');
        assert.deepEqual(await runIds(), [first.body.id]);
      });

      it('another body with the same key gets 422 idempotency_key_reused, and creates nothing', async () => {
        const { apiKey, send, runIds } = await account();
        const k = unique('key');
        const body = { agent: 'echo', input: 'a', session_id: unique('s'), model: 'm', timeout_ms: 5_000, metadata: { n: 1 } };
        const first = await send(body, k);
        assert.equal(first.status, 202, first.text);
        await agentd.waitForEnd(apiKey, first.body.id);
        const changes: Array<Record<string, unknown>> = [
          { input: 'b' },
          { input: null },
          { agent: 'simulate', input: { events: 1, interval_ms: 0 } },
          { session_id: unique('s') },
          { session_id: null },
          { model: 'other' },
          { timeout_ms: 5_001 },
          { metadata: { n: 2 } },
          { metadata: null },
        ];
        for (const change of changes) {
          assertError(await send({ ...body, ...change }, k), 422, 'idempotency_key_reused');
        }
        assert.deepEqual(await runIds(), [first.body.id]);
        assert.equal((await send(body, k)).body.id, first.body.id, 'the first body still gets its run');
      });

      it('a race of two bodies on one key: one 202, one 422, one run', async () => {
        const { apiKey, send, runIds } = await account();
        const keys = Array.from({ length: 10 }, () => unique('race'));
        const answers = await Promise.all(
          keys.map((k) => Promise.all([send({ agent: 'echo', input: 'one' }, k), send({ agent: 'echo', input: 'two' }, k)])),
        );
        const created: string[] = [];
        for (const pair of answers) {
          assert.deepEqual(pair.map((res) => res.status).sort(), [202, 422], pair.map((res) => res.text).join(' | '));
          const winner = pair.find((res) => res.status === 202) as JsonResponse;
          assertError(pair.find((res) => res.status === 422) as JsonResponse, 422, 'idempotency_key_reused');
          created.push(winner.body.id);
        }
        for (const id of created) await agentd.waitForEnd(apiKey, id);
        assert.deepEqual((await runIds()).sort(), created.sort());
      });

      it('a race of the same body on one key: every answer is the one run', async () => {
        const { apiKey, send, runIds } = await account();
        const k = unique('race');
        const answers = await Promise.all(Array.from({ length: 8 }, () => send({ agent: 'echo', input: 'same' }, k)));
        const ids = new Set(answers.map((res) => (res.status === 202 ? res.body.id : res.text)));
        assert.equal(ids.size, 1, [...ids].join(' | '));
        const [id] = [...ids] as [string];
        await agentd.waitForEnd(apiKey, id);
        assert.deepEqual(await runIds(), [id]);
      });
    });
  });

  describe(`Idempotency-Key on a full instance on ${storage}`, () => {
    let agentd: TestAgentd;
    before(async () => {
      agentd = await startAgentd(storage, { MAX_CONCURRENT_AGENT_RUNS: '1', RUN_QUEUE_MAX: '0' });
    });
    after(async () => {
      await agentd.waitForIdle();
      await agentd.close();
    });

    it('a retry with the same body gets its run, another body 422, a new key 503', async () => {
      const { apiKey } = await agentd.createAccount('enterprise', 'full');
      const k = unique('key');
      const body = { agent: 'simulate', input: { events: 1000, interval_ms: 1000 } };
      const first = await agentd.as(apiKey, 'POST', '/v1/runs', { body, headers: { 'idempotency-key': k } });
      assert.equal(first.status, 202, first.text);
      assert.equal(first.body.status, 'running');
      const again = await agentd.as(apiKey, 'POST', '/v1/runs', { body, headers: { 'idempotency-key': k } });
      assert.equal(again.status, 202, again.text);
      assert.equal(again.body.id, first.body.id);
      const reused = await agentd.as(apiKey, 'POST', '/v1/runs', {
        body: { ...body, input: { events: 1 } },
        headers: { 'idempotency-key': k },
      });
      assertError(reused, 422, 'idempotency_key_reused');
      const other = await agentd.as(apiKey, 'POST', '/v1/runs', { body, headers: { 'idempotency-key': unique('key') } });
      assertError(other, 503, 'capacity_exhausted');
      assert.equal((await agentd.as(apiKey, 'POST', `/v1/runs/${first.body.id}/cancel`)).status, 202);
      assert.equal((await agentd.waitForEnd(apiKey, first.body.id)).status, 'cancelled');
    });
  });
}
