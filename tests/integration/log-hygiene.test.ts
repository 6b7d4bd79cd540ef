/**
 * agentd as its own OS process at LOG_LEVEL=debug: bad input of every kind, and statements
 * the database refuses, each carrying a marker of its own, and not one marker in anything
 * the process writes to stdout or stderr, through shutdown.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import type { Database } from '../../src/db/database.js';
import { migrate } from '../../src/db/migrations.js';
import { createPgliteDatabase } from '../../src/db/pglite-database.js';
import { createPostgresDatabase } from '../../src/db/postgres-database.js';
import { ADMIN_TOKEN, STORAGES, type Storage } from '../helpers/agentd.js';
import type { JsonResponse } from '../helpers/http.js';
import { randomTag } from '../helpers/ids.js';
import { type AgentdProcess, spawnAgentd } from '../helpers/process.js';
import { rawRequest } from '../helpers/raw-http.js';
import { createTestDatabase } from '../helpers/test-database.js';
import { waitFor } from '../helpers/wait-for.js';

const MAX_BODY_BYTES = 65_536;

/**
 * Checks that make the database refuse what carries a trigger word, as it would refuse data
 * it cannot store: an admission, an archived event, a run's output. Postgres then describes
 * the row it refused, input and all, in the error.
 */
const REFUSALS = [
  `ALTER TABLE runs ADD CONSTRAINT refuse_admission CHECK (metadata IS NULL OR NOT metadata ? 'refuse_admission')`,
  `ALTER TABLE run_event_chunks ADD CONSTRAINT refuse_event CHECK (position('refuse-event' in events) = 0)`,
  `ALTER TABLE runs ADD CONSTRAINT refuse_output CHECK (output IS NULL OR position('refuse-output' in output::text) = 0)`,
];

/** A migrated database with the refusing checks, and the env that points agentd at it. */
async function prepareStorage(storage: Storage): Promise<{ env: Record<string, string>; cleanup(): Promise<void> }> {
  const setUp = async (db: Database) => {
    try {
      await migrate(db);
      for (const statement of REFUSALS) await db.query(statement);
    } finally {
      await db.close();
    }
  };
  if (storage === 'postgres') {
    const database = await createTestDatabase();
    await setUp(createPostgresDatabase({ url: database.url, max: 1, acquireTimeoutMs: 5_000, applicationName: 'agentd-test-setup' }));
    return { env: { DATABASE_URL: database.url }, cleanup: () => database.drop() };
  }
  const dir = await mkdtemp(join(tmpdir(), 'agentd-logs-'));
  await setUp(await createPgliteDatabase({ dataDir: join(dir, 'pglite') }));
  return { env: { DATA_DIR: dir }, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

for (const storage of STORAGES) {
  describe(`no request input in the logs: agentd as a process on ${storage}`, () => {
    let agentd: AgentdProcess;
    let cleanup: () => Promise<void>;
    let apiKey: string;
    const markers: string[] = [];
    /** A marker no log line may hold, tagged with where it was sent. */
    const mark = (where: string) => {
      const marker = `MARK${where}${randomTag(6)}`;
      markers.push(marker);
      return marker;
    };

    before(async () => {
      const prepared = await prepareStorage(storage);
      cleanup = prepared.cleanup;
      agentd = await spawnAgentd({
        ...prepared.env,
        LOG_LEVEL: 'debug',
        ADMIN_TOKEN,
        MAX_BODY_BYTES: String(MAX_BODY_BYTES),
        INSTANCE_ID: `logs-${process.pid}-${randomTag(3)}`,
      });
      const account = await rawRequest(agentd.url, {
        method: 'POST',
        path: '/v1/admin/accounts',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'logs', tier: 'enterprise' }),
      });
      apiKey = account.body.api_key;
    });
    after(async () => {
      await agentd?.kill('SIGKILL');
      await cleanup?.();
    });

    /** A request with the key and markers in headers of its own. */
    const send = (method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}) =>
      rawRequest(agentd.url, {
        method,
        path,
        headers: {
          authorization: `Bearer ${apiKey}`,
          'content-type': 'application/json',
          'user-agent': mark('agent'),
          'x-request-note': mark('header'),
          ...headers,
        },
        body,
      });
    const expect = (res: JsonResponse, status: number, code: string) => {
      assert.equal(res.status, status, res.text);
      assert.equal(res.body.error.code, code, res.text);
    };

    it('answers bad input of every kind with its 4xx', async () => {
      const m = () => mark('body');
      expect(await send('POST', '/v1/runs', `{"agent": "echo", "input": "${m()}\\ud800"}`), 400, 'invalid_json');
      expect(await send('POST', '/v1/runs', `{"agent": "echo", "metadata": {"\\udc00${m()}": "${m()}"}}`), 400, 'invalid_json');
      expect(await send('POST', '/v1/runs', `{"agent": "echo", "session_id": "${m()}\\ud83d"}`), 400, 'invalid_json');
      expect(
        await send('POST', '/v1/runs', `{"agent": "echo", "input": ${'['.repeat(10_000)}"${m()}"${']'.repeat(10_000)}}`),
        400,
        'invalid_json',
      );
      expect(await send('POST', '/v1/runs', `{"agent": "echo", "input": "${m()}`), 400, 'invalid_json');
      expect(
        await send(
          'POST',
          '/v1/runs',
          Buffer.concat([Buffer.from(`{"agent": "echo", "input": "${m()}`), Buffer.from([0xed, 0xa0, 0x80, 0x22, 0x7d])]),
        ),
        400,
        'invalid_json',
      );
      expect(await send('POST', '/v1/runs', `{"agent": "echo", "input": "${m()}\\u0000"}`), 400, 'invalid_request');
      expect(
        await send('POST', '/v1/runs', `{"agent": "echo", "input": "${m()}"}`, { 'content-encoding': 'gzip' }),
        415,
        'unsupported_media_type',
      );
      expect(
        await send('POST', '/v1/runs', gzipSync(`{"agent": "echo", "input": "${m()}"}`), { 'content-encoding': 'gzip' }),
        415,
        'unsupported_media_type',
      );
      expect(await send('POST', '/v1/runs', `{"agent": "echo", "input": "${m()}${'x'.repeat(MAX_BODY_BYTES)}"}`), 413, 'payload_too_large');
      expect(await send('POST', '/v1/runs', `{"agent": "${m()}"}`), 400, 'unknown_agent');
      expect(await send('POST', '/v1/runs', `{"agent": "echo", "${m()}": 1}`), 400, 'invalid_request');
      expect(await send('POST', '/v1/runs', `{"agent": "simulate", "input": {"events": "${m()}"}}`), 400, 'invalid_request');
      expect(await send('POST', '/v1/runs', `{"agent": "echo", "timeout_ms": "${m()}"}`), 400, 'invalid_request');
      expect(
        await send('POST', '/v1/runs', '{"agent": "echo"}', { 'idempotency-key': `${mark('key')}${'k'.repeat(200)}` }),
        400,
        'invalid_request',
      );
      expect(
        await send('POST', '/v1/runs', `{"agent": "echo", "input": "${m()}"}`, { authorization: `Bearer ${mark('apikey')}` }),
        401,
        'unauthorized',
      );
      expect(await send('POST', '/v1/runs', `{"agent": ${m()}`, { authorization: '' }), 401, 'unauthorized');
      expect(
        await send('POST', '/v1/admin/accounts', `{"name": "${m()}\\ud800"}`, { authorization: `Bearer ${mark('admintoken')}` }),
        401,
        'unauthorized',
      );

      const cursor = Buffer.from(JSON.stringify(['+010000-01-01T00:00:00.000Z', mark('cursor')])).toString('base64url');
      expect(await send('GET', `/v1/runs?cursor=${cursor}`), 400, 'invalid_request');
      expect(await send('GET', `/v1/runs?cursor=${mark('cursor')}`), 400, 'invalid_request');
      expect(await send('GET', `/v1/runs?session_id=${mark('query')}%01`), 400, 'invalid_request');
      expect(await send('GET', `/v1/runs?limit=${mark('query')}`), 400, 'invalid_request');
      expect(await send('GET', `/v1/runs/${mark('path')}`), 404, 'not_found');
      expect(await send('GET', `/v1/runs/${mark('path')}%E0%A4%A`), 404, 'not_found');
      expect(await send('GET', `/${mark('path')}`), 404, 'not_found');
      expect(
        await send('GET', `/v1/admin/accounts/${mark('path')}`, undefined, { authorization: `Bearer ${ADMIN_TOKEN}` }),
        404,
        'not_found',
      );

      const key = mark('idempotency');
      const first = await send('POST', '/v1/runs', `{"agent": "echo", "input": "${m()}"}`, { 'idempotency-key': key });
      assert.equal(first.status, 202, first.text);
      expect(
        await send('POST', '/v1/runs', `{"agent": "echo", "input": "${m()}"}`, { 'idempotency-key': key }),
        422,
        'idempotency_key_reused',
      );
      expect(
        await send('GET', `/v1/runs/${first.body.id}/events`, undefined, { 'last-event-id': mark('lastevent') }),
        400,
        'invalid_request',
      );
    });

    it('answers statements the database refuses with 500 internal, and logs them', async () => {
      const logged = (message: string, check: (line: Record<string, any>) => boolean = () => true) =>
        waitFor(() => agentd.logs().some((line) => line.message === message && check(line)), { what: `log line "${message}"` });

      const refused = await send(
        'POST',
        '/v1/runs',
        JSON.stringify({
          agent: 'echo',
          input: mark('input'),
          session_id: mark('session'),
          metadata: { refuse_admission: mark('metadata') },
        }),
        { 'idempotency-key': mark('idempotency') },
      );
      expect(refused, 500, 'internal');
      await logged('request failed', (line) => line.error?.code === '23514' && line.error?.constraint === 'refuse_admission');
      await logged('the database refused a batch of admissions; retrying them one at a time');

      const archived = await send('POST', '/v1/runs', JSON.stringify({ agent: 'echo', input: `refuse-event ${mark('input')}` }));
      assert.equal(archived.status, 202, archived.text);
      await logged(
        'the archive refused an event; it was skipped',
        (line) => line.run_id === archived.body.id && line.error?.code === '23514',
      );

      const output = await send(
        'POST',
        '/v1/runs',
        JSON.stringify({ agent: 'echo', input: `refuse-output ${mark('input')}`, metadata: { note: mark('metadata') } }),
      );
      assert.equal(output.status, 202, output.text);
      await logged(
        'could not record the end of the run; a restart with this INSTANCE_ID ends it',
        (line) => line.run_id === output.body.id,
      );
    });

    it('wrote none of the markers to stdout or stderr, through shutdown', async () => {
      assert.equal(await agentd.kill('SIGTERM'), 0);
      assert.ok(agentd.logs().some((line) => line.message === 'stopped'));
      assert.ok(markers.length > 40, `sent ${markers.length} markers`);
      const output = `${agentd.stdout()}\n${agentd.stderr()}`;
      const found = markers.filter((marker) => output.includes(marker));
      const lines = output.split('\n').filter((line) => found.some((marker) => line.includes(marker)));
      assert.deepEqual(found, [], `markers in the output:\n${lines.join('\n')}`);
    });
  });
}
