/**
 * What an operator reads: agentd as its own OS process on Postgres and Redis, and the lines it
 * writes. One access line per request with its id, every error with its message (a 500's and a
 * failed agent's with their stacks), one line per finished run, the context fields on the
 * lines of a run; at start-up a warning for a misspelt variable, and when start-up fails, why
 * (the host, the cause), in JSON or pretty lines. Never a token, a key, a password or request
 * input, through shutdown.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { migrate } from '../../src/db/migrations.js';
import { createPostgresDatabase } from '../../src/db/postgres-database.js';
import { ADMIN_TOKEN } from '../helpers/agentd.js';
import { request, type JsonResponse } from '../helpers/http.js';
import { randomTag } from '../helpers/ids.js';
import { type AgentdProcess, runAgentdExpectingFailure, spawnAgentd } from '../helpers/process.js';
import { cleanupPrefix, redisUrl, uniquePrefix } from '../helpers/redis.js';
import { createTestDatabase } from '../helpers/test-database.js';
import { waitFor } from '../helpers/wait-for.js';

type Line = Record<string, any>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('logs of agentd as a process on Postgres and Redis', () => {
  let database: { url: string; drop(): Promise<void> };
  let agentd: AgentdProcess;
  let apiKey: string;
  let accountId: string;
  const prefix = uniquePrefix();
  const instanceId = `logs-${randomTag(3)}`;
  const markers: string[] = [];
  const mark = (where: string) => {
    const marker = `MARK${where}${randomTag(6)}`;
    markers.push(marker);
    return marker;
  };
  const nearMissValue = mark('nearmiss');

  /** The first line that fits, once it is written. */
  const line = (what: string, fits: (line: Line) => boolean): Promise<Line> =>
    waitFor(() => agentd.logs().find(fits), { what: `log line: ${what}` });
  const accessLine = (res: JsonResponse) => {
    const id = res.headers.get('x-request-id');
    return line(`request ${id}`, (l) => l.message === 'request' && l.request_id === id);
  };

  before(async () => {
    database = await createTestDatabase();
    const setup = createPostgresDatabase({ url: database.url, max: 1, acquireTimeoutMs: 5_000, applicationName: 'agentd-test-setup' });
    try {
      await migrate(setup);
      // The database refuses an admission whose metadata has this key, as it refuses data it cannot store.
      await setup.query(`ALTER TABLE runs ADD CONSTRAINT refuse_admission CHECK (metadata IS NULL OR NOT metadata ? 'refuse_admission')`);
    } finally {
      await setup.close();
    }
    agentd = await spawnAgentd({
      DATABASE_URL: database.url,
      REDIS_URL: redisUrl(),
      REDIS_KEY_PREFIX: prefix,
      ADMIN_TOKEN,
      INSTANCE_ID: instanceId,
      MAX_CONCURRENT_AGENT_RUNS: '1',
      RUN_QUEU_MAX: nearMissValue,
    });
    const account = await request(agentd.url, 'POST', '/v1/admin/accounts', { token: ADMIN_TOKEN, body: { name: 'logs', tier: 'pro' } });
    apiKey = account.body.api_key;
    accountId = account.body.id;
  });
  after(async () => {
    await agentd?.kill('SIGKILL');
    await database?.drop();
    await cleanupPrefix(prefix);
  });

  it('warns at start-up of a variable it does not read that looks like one it does, naming both, not the value', async () => {
    const warning = await line('near miss', (l) => l.variable === 'RUN_QUEU_MAX');
    assert.equal(warning.level, 'warn');
    assert.equal(warning.intended, 'RUN_QUEUE_MAX');
    assert.match(warning.message, /RUN_QUEU_MAX.*RUN_QUEUE_MAX/);
  });

  it('writes the sizing as limits by name, with the source of those not at their default', async () => {
    const sizing = await line('sizing', (l) => l.message === 'sizing');
    assert.equal(sizing.limits.MAX_CONCURRENT_AGENT_RUNS, 1);
    assert.equal(sizing.sources.MAX_CONCURRENT_AGENT_RUNS, 'env');
    assert.equal(sizing.sources.DB_MAX_CONNECTIONS, 'auto');
    assert.equal(sizing.sources.RUN_TIMEOUT_MS, undefined);
    assert.ok(Object.values(sizing.limits).every((value) => typeof value === 'number'));
    assert.deepEqual([sizing.database, sizing.event_store], ['postgres', 'redis']);
    assert.ok(sizing.machine.cpus >= 1);
  });

  it('returns a sane X-Request-Id as sent, makes one otherwise, and writes one access line per request', async () => {
    const missing = '00000000-0000-4000-8000-000000000000';
    const sent = await request(agentd.url, 'GET', `/v1/runs/${missing}?limit=${mark('query')}`, {
      token: apiKey,
      headers: { 'x-request-id': 'trace-abc.123' },
    });
    assert.equal(sent.status, 404);
    assert.equal(sent.headers.get('x-request-id'), 'trace-abc.123');
    const access = await accessLine(sent);
    assert.deepEqual(
      [access.level, access.method, access.route, access.status, access.account_id, access.instance_id],
      ['info', 'GET', '/v1/runs/:id', 404, accountId, instanceId],
    );
    assert.equal(typeof access.duration_ms, 'number');
    assert.doesNotMatch(JSON.stringify(access), new RegExp(missing));

    const insane = `${mark('requestid')} with spaces`;
    const made = await request(agentd.url, 'GET', '/v1/admin/capacity', { token: ADMIN_TOKEN, headers: { 'x-request-id': insane } });
    assert.match(made.headers.get('x-request-id') ?? '', UUID);
    assert.equal((await accessLine(made)).route, '/v1/admin/capacity');

    const refused = await request(agentd.url, 'GET', `/v1/runs/${mark('path')}`, { token: mark('apikey') });
    assert.equal(refused.status, 401);
    const unrouted = await accessLine(refused);
    assert.deepEqual([unrouted.route, unrouted.status, unrouted.account_id], ['(no route)', 401, undefined]);
  });

  it('logs a 500 with the error’s message, code and stack and the request id, and none of the input', async () => {
    const res = await request(agentd.url, 'POST', '/v1/runs', {
      token: apiKey,
      body: { agent: 'echo', input: mark('input'), metadata: { refuse_admission: mark('metadata') } },
    });
    assert.equal(res.status, 500);
    const requestId = res.headers.get('x-request-id');
    const failed = await line('request failed', (l) => l.message === 'request failed' && l.request_id === requestId);
    assert.equal(failed.level, 'error');
    assert.equal(failed.route, '/v1/runs');
    assert.equal(failed.error.name, 'DatabaseError');
    assert.equal(failed.error.code, '23514');
    assert.equal(failed.error.constraint, 'refuse_admission');
    assert.match(failed.error.message, /^new row for relation /);
    assert.match(failed.error.stack, /^DatabaseError: .*\n\s+at /);
    assert.equal((await accessLine(res)).status, 500);
  });

  it('logs each finished run once: status, error code, agent, account, queue wait and duration; a failed agent at warn with its stack', async () => {
    const long = await request(agentd.url, 'POST', '/v1/runs', {
      token: apiKey,
      body: { agent: 'simulate', input: { events: 4, interval_ms: 50 }, metadata: { note: mark('metadata') } },
    });
    const failing = await request(agentd.url, 'POST', '/v1/runs', {
      token: apiKey,
      body: { agent: 'simulate', input: { events: 3, interval_ms: 0, fail_at: 1 } },
    });
    assert.deepEqual([long.body.status, failing.body.status], ['running', 'queued']);
    const finished = (id: string) => line(`run ${id} finished`, (l) => l.message === 'run finished' && l.run_id === id);

    const completed = await finished(long.body.id);
    assert.deepEqual(
      [completed.level, completed.status, completed.error_code, completed.agent, completed.account_id, completed.queue_wait_ms],
      ['info', 'completed', undefined, 'simulate', accountId, 0],
    );
    assert.ok(completed.duration_ms >= 150, `ran ${completed.duration_ms} ms`);
    assert.equal(completed.request_id, long.headers.get('x-request-id'), 'a run’s lines carry the request that started it');

    const failed = await finished(failing.body.id);
    assert.deepEqual(
      [failed.level, failed.status, failed.error_code, failed.agent, failed.account_id],
      ['warn', 'failed', 'agent_error', 'simulate', accountId],
    );
    assert.ok(failed.queue_wait_ms > 0, `waited ${failed.queue_wait_ms} ms behind the first run`);
    assert.equal(failed.error.message, 'simulated failure at event 1');
    assert.match(failed.error.stack, /^SimulatedFailure: simulated failure at event 1\n\s+at .*simulate/);

    const ofRuns = agentd.logs().filter((l) => l.run_id === long.body.id || l.run_id === failing.body.id);
    assert.ok(ofRuns.length >= 2);
    for (const each of ofRuns) assert.deepEqual([each.account_id, each.instance_id], [accountId, instanceId], JSON.stringify(each));
  });

  it('logs an event stream when it ends, with its whole duration', async () => {
    const res = await request(agentd.url, 'POST', '/v1/runs/stream', {
      token: apiKey,
      body: { agent: 'simulate', input: { events: 3, interval_ms: 40 } },
    });
    assert.equal(res.status, 200);
    const access = await accessLine(res);
    assert.deepEqual([access.route, access.status, access.stream], ['/v1/runs/stream', 200, true]);
    assert.ok(access.duration_ms >= 80, `streamed for ${access.duration_ms} ms`);
  });

  it('wrote no token, key, or request input to stdout or stderr, through shutdown', async () => {
    assert.equal(await agentd.kill('SIGTERM'), 0);
    const output = `${agentd.stdout()}\n${agentd.stderr()}`;
    const secrets = [ADMIN_TOKEN, apiKey, ...markers];
    const found = secrets.filter((secret) => output.includes(secret));
    const lines = output.split('\n').filter((each) => found.some((secret) => each.includes(secret)));
    assert.deepEqual(found, [], `found in the output:\n${lines.join('\n')}`);
  });
});

describe('logs when start-up fails', () => {
  const password = `pw${randomTag(6)}`;

  it('names a bad secret variable without its value (exit 2)', async () => {
    const token = `tok-${randomTag(4)}`;
    const { code, stderr, stdout } = await runAgentdExpectingFailure({ ADMIN_TOKEN: token });
    assert.equal(code, 2);
    assert.match(stderr, /ADMIN_TOKEN must be at least 16 characters long \(got a value of 12 characters, not shown\)/);
    assert.ok(!`${stdout}${stderr}`.includes(token));
  });

  it('names the unreachable database’s host and port and the cause, never its password (exit 1)', async () => {
    const { code, stderr, stdout } = await runAgentdExpectingFailure({ DATABASE_URL: `postgres://agentd:${password}@127.0.0.1:1/agentd` });
    assert.equal(code, 1);
    assert.match(stderr, /^agentd: failed to start: cannot connect to the database at 127\.0\.0\.1:1\n {2}caused by: .*ECONNREFUSED/);
    const failed = stdout
      .split('\n')
      .filter((each) => each.startsWith('{'))
      .map((each) => JSON.parse(each) as Line)
      .find((each) => each.message === 'failed to start');
    assert.equal(failed?.error.message, 'cannot connect to the database at 127.0.0.1:1');
    assert.equal(failed?.error.cause.code, 'ECONNREFUSED');
    assert.match(failed?.error.stack, /\n\s+at /);
    assert.ok(!`${stdout}${stderr}`.includes(password));
  });

  it('says in one line that Redis cannot be reached, with its host and port and the cause (exit 1)', async () => {
    const database = await createTestDatabase();
    try {
      const { code, stderr, stdout } = await runAgentdExpectingFailure({
        DATABASE_URL: database.url,
        REDIS_URL: `redis://:${password}@127.0.0.1:1`,
      });
      assert.equal(code, 1);
      assert.match(stderr, /cannot connect to Redis at 127\.0\.0\.1:1\n {2}caused by: .*ECONNREFUSED/);
      const errors = stdout
        .split('\n')
        .filter((each) => each.startsWith('{'))
        .map((each) => JSON.parse(each) as Line)
        .filter((each) => each.level === 'error');
      assert.deepEqual(
        errors.map((each) => [each.message, each.error?.cause?.code]),
        [['failed to start', 'ECONNREFUSED']],
      );
      assert.ok(!`${stdout}${stderr}`.includes(password));
    } finally {
      await database.drop();
    }
  });

  it('writes lines for people with LOG_FORMAT=pretty: no JSON, the error’s causes below it', async () => {
    const { code, stdout } = await runAgentdExpectingFailure({
      LOG_FORMAT: 'pretty',
      DATABSE_URL: 'ignored',
      DATABASE_URL: `postgres://agentd:${password}@127.0.0.1:1/agentd`,
    });
    assert.equal(code, 1);
    const lines = stdout.split('\n').filter((each) => each !== '');
    for (const each of lines) assert.throws(() => JSON.parse(each), `not JSON: ${each}`);
    assert.ok(lines.some((each) => /^\d\d:\d\d:\d\d\.\d{3} WARN {2}unknown variable DATABSE_URL; did you mean DATABASE_URL\?/.test(each)));
    assert.ok(lines.some((each) => /^\d\d:\d\d:\d\d\.\d{3} ERROR failed to start /.test(each)));
    assert.ok(lines.includes('    error: cannot connect to the database at 127.0.0.1:1'));
    assert.ok(lines.some((each) => /^ {4}caused by: .*ECONNREFUSED/.test(each)));
    assert.doesNotMatch(stdout, /\x1b\[/, 'no colours when stdout is not a terminal');
    assert.ok(!stdout.includes(password));
  });
});
