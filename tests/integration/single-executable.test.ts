import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { buildBinary } from '../../tools/binary/build.js';
import { ADMIN_TOKEN } from '../helpers/agentd.js';
import { request } from '../helpers/http.js';
import { type AgentdProcess, spawnAgentd } from '../helpers/process.js';
import { cleanupPrefix, redisUrl, uniquePrefix } from '../helpers/redis.js';
import { readSse } from '../helpers/sse.js';
import { createTestDatabase } from '../helpers/test-database.js';
import { waitFor } from '../helpers/wait-for.js';

const run = promisify(execFile);
/** A PATH with the system's tools and no node: the executable must need nothing beside itself. */
const NO_NODE_PATH = '/nonexistent';

describe('the single executable, alone in an empty folder, on the embedded defaults', () => {
  let buildDir: string;
  let dir: string;
  let executable: string;
  let agentd: AgentdProcess | undefined;
  let key: string;
  let finished: string;

  const start = () =>
    spawnAgentd({ PATH: NO_NODE_PATH, ADMIN_TOKEN }, { command: [executable, 'serve'], cwd: dir, startTimeoutMs: 60_000 });
  const api = (method: string, path: string, body?: unknown, token = key) =>
    request((agentd as AgentdProcess).url, method, path, { token, body });

  before(async () => {
    buildDir = await mkdtemp(join(tmpdir(), 'agentd-binary-build-'));
    dir = await mkdtemp(join(tmpdir(), 'agentd-binary-'));
    executable = join(dir, 'agentd');
    await copyFile(await buildBinary(buildDir), executable);
    await rm(buildDir, { recursive: true, force: true });
    await chmod(executable, 0o755);
  });
  after(async () => {
    await agentd?.kill('SIGTERM');
    await rm(dir, { recursive: true, force: true });
    await rm(buildDir, { recursive: true, force: true });
  });

  it('is one file, and answers --version with no node on PATH', async () => {
    assert.deepEqual(await readdir(dir), ['agentd']);
    const { stdout } = await run(executable, ['--version'], { env: { PATH: NO_NODE_PATH }, cwd: dir });
    assert.match(stdout.trim(), /^\d+\.\d+\.\d+/);
  });

  it("passes the README's walk-through: account, run, status, cancel, stream, resume, list", async () => {
    agentd = await start();
    const account = await api('POST', '/v1/admin/accounts', { name: 'acme', tier: 'pro' }, ADMIN_TOKEN);
    assert.equal(account.status, 201, account.text);
    key = account.body.api_key as string;

    const echo = await api('POST', '/v1/runs', { agent: 'echo', input: 'hello' });
    assert.equal(echo.status, 202, echo.text);
    finished = echo.body.id as string;
    const done = await waitFor(async () => {
      const res = await api('GET', `/v1/runs/${finished}`);
      return res.body.status === 'completed' ? res.body : undefined;
    });
    assert.deepEqual(done.output, { role: 'assistant', content: 'hello' });

    const long = await api('POST', '/v1/runs', { agent: 'simulate', input: { events: 1000, interval_ms: 100 } });
    const cancelled = await api('POST', `/v1/runs/${long.body.id as string}/cancel`);
    assert.equal(cancelled.status, 202, cancelled.text);
    await waitFor(async () => (await api('GET', `/v1/runs/${long.body.id as string}`)).body.status === 'cancelled');

    const streamed = await api('POST', '/v1/runs', { agent: 'simulate', input: { events: 5, interval_ms: 20 } });
    const url = `${(agentd as AgentdProcess).url}/v1/runs/${streamed.body.id as string}/events`;
    const all = await readSse(url, { token: key });
    assert.deepEqual(
      all.events.map((e) => e.event),
      ['status', 'token', 'token', 'token', 'token', 'token', 'end'],
    );
    const resumed = await readSse(`${url}?after=${all.events[2]?.id as string}`, { token: key });
    assert.deepEqual(
      resumed.events.map((e) => e.id),
      all.events.slice(3).map((e) => e.id),
    );
    const list = await api('GET', '/v1/runs?limit=10');
    assert.equal(list.body.runs.length, 3);
  });

  it('keeps its data across a restart (the database under ./data beside it)', async () => {
    assert.equal(await (agentd as AgentdProcess).kill('SIGTERM'), 0);
    agentd = await start();
    const res = await api('GET', `/v1/runs/${finished}`);
    assert.equal(res.status, 200, 'the key and the run are still there');
    assert.equal(res.body.status, 'completed');
    assert.ok((await stat(join(dir, 'data'))).isDirectory());
  });

  it('refuses AGENTS_DIR at start-up, saying which route loads own agents', async () => {
    await mkdir(join(dir, 'agents'));
    await writeFile(join(dir, 'agents/hello.mjs'), "export default { name: 'hello' };\n");
    const refused = await run(executable, ['serve'], {
      env: { PATH: NO_NODE_PATH, ADMIN_TOKEN, AGENTS_DIR: './agents', PORT: '0', DATA_DIR: './refused-data' },
      cwd: dir,
    }).then(
      () => assert.fail('it started'),
      (error: { code: number; stderr: string }) => error,
    );
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /AGENTS_DIR is not supported by the single executable.*npm start/);
    await rm(join(dir, 'agents'), { recursive: true });
    await rm(join(dir, 'refused-data'), { recursive: true, force: true });
  });

  it('uses real Postgres and Redis when told, and forks its workers (WORKERS=2) as itself', async () => {
    await (agentd as AgentdProcess).kill('SIGTERM');
    const database = await createTestDatabase();
    const prefix = uniquePrefix();
    try {
      const env = {
        PATH: NO_NODE_PATH,
        ADMIN_TOKEN,
        DATABASE_URL: database.url,
        REDIS_URL: redisUrl(),
        REDIS_KEY_PREFIX: prefix,
        WORKERS: '2',
      };
      agentd = await spawnAgentd(env, { command: [executable, 'serve'], cwd: dir, startTimeoutMs: 60_000 });
      await waitFor(() => (agentd as AgentdProcess).logs().filter((line) => line.message === 'listening').length === 2, {
        what: 'both workers to listen',
      });
      const account = await api('POST', '/v1/admin/accounts', { name: 'real', tier: 'pro' }, ADMIN_TOKEN);
      key = account.body.api_key as string;
      const streamed = await readSse(`${(agentd as AgentdProcess).url}/v1/runs/stream`, {
        token: key,
        method: 'POST',
        body: { agent: 'echo', input: 'on real services' },
      });
      assert.deepEqual(streamed.events.at(-1)?.data, { status: 'completed' });
      assert.equal(await (agentd as AgentdProcess).kill('SIGTERM'), 0);
      agentd = undefined;
    } finally {
      await cleanupPrefix(prefix);
      await database.drop();
    }
  });
});
