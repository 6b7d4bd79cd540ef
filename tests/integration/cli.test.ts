import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import type { Command } from 'commander';
import { buildProgram } from '../../src/cli/program.js';
import { style } from '../../src/cli/terminal.js';
import { ADMIN_TOKEN, startAgentd, type TestAgentd } from '../helpers/agentd.js';
import { request } from '../helpers/http.js';
import { spawnAgentd } from '../helpers/process.js';
import { cleanupPrefix, redisUrl, uniquePrefix } from '../helpers/redis.js';
import { assertIncreasingIds } from '../helpers/sse.js';
import { createTestDatabase } from '../helpers/test-database.js';
import { waitFor } from '../helpers/wait-for.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the CLI (`src/cli/main.ts`) with only `env` (and PATH) in its environment. */
async function runCli(args: readonly string[], env: Record<string, string> = {}): Promise<CliResult> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const [code] = (await once(child, 'close')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describe('the agentd CLI against a live agentd', () => {
  let agentd: TestAgentd;
  let key: string;
  /** The CLI with agentd's URL and an account's key in its environment. */
  const cli = (args: readonly string[], env: Record<string, string> = {}) =>
    runCli(args, { AGENTD_URL: agentd.url, AGENTD_API_KEY: key, ...env });

  const sseListeners = async () => (await agentd.admin('GET', '/v1/admin/capacity')).body.sse.listeners as number;

  before(async () => {
    agentd = await startAgentd('postgres', { TIER_LIMITS: 'bulk:100' });
    key = (await agentd.createAccount('bulk')).apiKey;
  });
  after(async () => {
    await agentd.waitForIdle();
    await agentd.close();
  });

  it('creates an account with the admin token and prints its key (plain, --json, --quiet)', async () => {
    const admin = { AGENTD_ADMIN_TOKEN: ADMIN_TOKEN };
    const keyWorks = async (apiKey: string) => (await agentd.as(apiKey, 'GET', '/v1/agents')).status === 200;

    const plain = await cli(['accounts', 'create', '--name', 'acme', '--tier', 'bulk'], admin);
    assert.equal(plain.code, 0, plain.stderr);
    const plainKey = /^api key\s+(\S+)$/m.exec(plain.stdout)?.[1];
    assert.ok(plainKey !== undefined && (await keyWorks(plainKey)), plain.stdout);
    assert.match(plain.stdout, /^account\s+acme \(bulk\)$/m);
    assert.match(plain.stderr, /shown this once/);

    const json = await cli(['accounts', 'create', '--name', 'acme', '--tier', 'bulk', '--json'], admin);
    assert.equal(json.code, 0, json.stderr);
    const account = JSON.parse(json.stdout) as { name: string; api_key: string; key_prefix: string };
    assert.equal(account.name, 'acme');
    assert.ok(await keyWorks(account.api_key));

    const quiet = await cli(['--admin-token', ADMIN_TOKEN, 'accounts', 'create', '--name', 'q', '--tier', 'bulk', '-q']);
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.match(quiet.stdout, /^[A-Za-z0-9_-]{40,}\n$/);
    assert.ok(await keyWorks(quiet.stdout.trim()));

    const withoutToken = await cli(['accounts', 'create', '--name', 'x']);
    assert.equal(withoutToken.code, 2);
    assert.match(withoutToken.stderr, /AGENTD_ADMIN_TOKEN/);
    const badTier = await cli(['accounts', 'create', '--name', 'x', '--tier', 'gold'], admin);
    assert.equal(badTier.code, 1);
    assert.match(badTier.stderr, /invalid_request \(400\)/);
  });

  it('runs an agent, printing its output; exits 0 only when the run completed', async () => {
    const echo = await cli(['run', 'echo', '--input', '"hello"']);
    assert.equal(echo.code, 0, echo.stderr);
    assert.equal(echo.stdout, 'hello\n');
    assert.match(echo.stderr, /run [0-9a-f-]{36} completed/);

    const failed = await cli(['run', 'simulate', '--input', '{"events": 5, "interval_ms": 5, "fail_at": 2}']);
    assert.equal(failed.code, 3, failed.stderr);
    assert.match(failed.stderr, /error: agent_error: simulated failure at event 2/);
    assert.match(failed.stderr, /failed/);

    const json = await cli(['run', 'simulate', '--input', '{"events": 8, "interval_ms": 5}', '--json']);
    assert.equal(json.code, 0, json.stderr);
    const events = json.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { id: string; type: string; data: any });
    assertIncreasingIds(events.map((e) => ({ id: e.id, event: e.type, data: e.data })));
    assert.deepEqual(
      events.filter((e) => e.type === 'token').map((e) => e.data.seq as number),
      range(8),
    );
    assert.deepEqual(events.at(-1)?.data, { status: 'completed' });

    const badInput = await cli(['run', 'echo', '--input', '{not json']);
    assert.equal(badInput.code, 2);
    assert.match(badInput.stderr, /--input must be JSON/);
    const unknown = await cli(['run', 'nobody']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /unknown_agent \(400\)/);
    const noKey = await cli(['run', 'echo'], { AGENTD_API_KEY: '' });
    assert.equal(noKey.code, 2);
    assert.match(noKey.stderr, /AGENTD_API_KEY/);
  });

  it('lists runs, tails one, cancels one', async () => {
    const detached = await cli(['run', 'simulate', '--input', '{"events": 100000, "interval_ms": 20}', '--detach']);
    assert.equal(detached.code, 0, detached.stderr);
    const id = detached.stdout.trim();
    assert.match(id, /^[0-9a-f-]{36}$/);

    const list = await cli(['runs', 'list', '--status', 'running']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^ID\s+STATUS\s+AGENT/);
    assert.match(list.stdout, new RegExp(`^${id}\\s+running\\s+simulate`, 'm'));
    const listJson = await cli(['runs', 'list', '--json', '--limit', '200']);
    assert.ok((JSON.parse(listJson.stdout) as Array<{ id: string }>).some((run) => run.id === id));

    const tail = runCli(['runs', 'tail', id], { AGENTD_URL: agentd.url, AGENTD_API_KEY: key });
    await waitFor(async () => (await sseListeners()) > 0, { what: 'the tail to listen' });
    const cancel = await cli(['cancel', id]);
    assert.equal(cancel.code, 0, cancel.stderr);
    assert.match(cancel.stdout, new RegExp(`run ${id} (cancelled|cancelling)`));
    const tailed = await tail;
    assert.equal(tailed.code, 4, tailed.stderr);
    assert.match(tailed.stderr, new RegExp(`run ${id} cancelled`));
    assert.match(tailed.stdout, /^x+/);

    const again = await cli(['cancel', id, '--json']);
    assert.deepEqual(JSON.parse(again.stdout), { id, status: 'cancelled' });
    const got = await cli(['runs', 'get', id]);
    assert.equal((JSON.parse(got.stdout) as { status: string }).status, 'cancelled');

    const done = await cli(['run', 'simulate', '--input', '{"events": 4, "interval_ms": 1}', '--detach']);
    const doneId = done.stdout.trim();
    await agentd.waitForEnd(key, doneId);
    const replay = await cli(['runs', 'tail', doneId, '--json']);
    assert.equal(replay.code, 0, replay.stderr);
    const lines = replay.stdout.trim().split('\n');
    const fromThird = await cli(['runs', 'tail', doneId, '--json', '--after', (JSON.parse(lines[2] ?? '{}') as { id: string }).id]);
    assert.deepEqual(fromThird.stdout.trim().split('\n'), lines.slice(3));
    const badAfter = await cli(['runs', 'tail', doneId, '--after', 'last']);
    assert.equal(badAfter.code, 2);
  });

  it('shows capacity with the admin token', async () => {
    const plain = await cli(['capacity'], { AGENTD_ADMIN_TOKEN: ADMIN_TOKEN });
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(plain.stdout, /^run slots\s+\d+ of \d+ in use, \d+ queued; bound by (cpus|memory|cap)$/m);
    assert.match(plain.stdout, /^cpus\s+\d+ \((os\.availableParallelism\(\)|cgroup .+)\)$/m);
    assert.match(plain.stdout, /^memory\s+[\d.]+ GiB \((os\.totalmem\(\)|process\.constrainedMemory\(\)|cgroup .+)\)$/m);
    assert.match(plain.stdout, /^MAX_CONCURRENT_AGENT_RUNS\s+\d+\s+auto$/m);
    const json = await cli(['capacity', '--json'], { AGENTD_ADMIN_TOKEN: ADMIN_TOKEN });
    const report = JSON.parse(json.stdout);
    assert.equal(report.instance_id, agentd.server.instanceId);
    assert.equal(report.sizing.run_slots.value, report.runs.capacity);
    const wrong = await cli(['capacity'], { AGENTD_ADMIN_TOKEN: 'wrong-token-0123456789abcdef' });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /unauthorized \(401\)/);
  });

  it('checks the configuration: values and their sources, never a secret', async () => {
    const env = {
      PORT: '4000',
      ADMIN_TOKEN: 'super-secret-admin-token-0123',
      DATABASE_URL: 'postgres://agentd:hunter2-password@db.internal:5432/agentd',
      AGENTD_API_KEY: 'the-cli-key-is-not-config',
    };
    const plain = await runCli(['config', 'check'], env);
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(plain.stdout, /^PORT\s+4000\s+env$/m);
    assert.match(plain.stdout, /^HOST\s+0\.0\.0\.0\s+default$/m);
    assert.match(plain.stdout, /^ADMIN_TOKEN\s+\(set, not shown\)\s+env$/m);
    assert.match(plain.stdout, /^DATABASE_URL\s+postgres:\/\/agentd:\*\*\*@db\.internal:5432\/agentd\s+env$/m);
    assert.match(plain.stdout, /^MAX_CONCURRENT_AGENT_RUNS\s+\(sized at start-up\)\s+auto$/m);
    assert.match(plain.stdout, /^TIER_LIMITS\s+free:1,pro:5,enterprise:25\s+default$/m);
    assert.doesNotMatch(plain.stdout + plain.stderr, /super-secret|hunter2|the-cli-key/);
    assert.doesNotMatch(plain.stderr, /unknown variable/, 'the CLI’s own variables are not misspellings of the server’s');

    const json = await runCli(['config', 'check', '--json'], { ...env, RUN_QUEU_MAX: '3' });
    const report = JSON.parse(json.stdout) as {
      valid: boolean;
      variables: Array<{ name: string; value: string | null }>;
      near_misses: unknown[];
    };
    assert.equal(report.valid, true);
    assert.deepEqual(
      report.variables.find((v) => v.name === 'ADMIN_TOKEN'),
      { name: 'ADMIN_TOKEN', value: null, source: 'env', secret: true },
    );
    assert.deepEqual(report.near_misses, [{ name: 'RUN_QUEU_MAX', intended: 'RUN_QUEUE_MAX' }]);
    assert.doesNotMatch(json.stdout, /super-secret|hunter2/);

    const invalid = await runCli(['config', 'check'], { PORT: 'abc', ADMIN_TOKEN: 'short' });
    assert.equal(invalid.code, 2);
    assert.match(invalid.stderr, /PORT .*"abc"/);
    assert.match(invalid.stderr, /ADMIN_TOKEN /);
    assert.doesNotMatch(invalid.stderr, /short/);
  });

  it('has --help for the program and every command', async () => {
    const top = await runCli(['--help']);
    assert.equal(top.code, 0);
    for (const command of ['serve', 'accounts', 'run', 'runs', 'cancel', 'agents', 'capacity', 'config']) {
      assert.match(top.stdout, new RegExp(`^ {2}${command}\\b`, 'm'), command);
    }
    const run = await runCli(['run', '--help']);
    assert.equal(run.code, 0);
    assert.match(run.stdout, /^Usage: agentd run \[options\] <agent>/);
    assert.match(run.stdout, /Exit codes: 0 completed, 3 failed/);
    assert.match(run.stdout, /--api-key/, 'the connection flags are listed with each command');

    // Every command, without a process each.
    const paths: string[] = [];
    const visit = (command: Command, path: string[]) => {
      for (const sub of command.commands) {
        const here = [...path, sub.name()];
        const help = sub.helpInformation();
        assert.match(help, new RegExp(`^Usage: agentd ${here.join(' ')} `), here.join(' '));
        assert.ok(sub.description().length > 10, `${here.join(' ')} has a description`);
        paths.push(here.join(' '));
        visit(sub, here);
      }
    };
    visit(buildProgram({ stdout: { write: () => true }, stderr: { write: () => true }, live: false, style: style(false) }, '0.0.0'), []);
    assert.deepEqual(paths.sort(), [
      'accounts',
      'accounts create',
      'agents',
      'cancel',
      'capacity',
      'config',
      'config check',
      'run',
      'runs',
      'runs get',
      'runs list',
      'runs tail',
      'serve',
    ]);
  });
});

describe('agentd serve', () => {
  it('starts the server as `node dist/main.js` does, and stops on SIGTERM', async () => {
    const database = await createTestDatabase();
    try {
      const server = await spawnAgentd({ DATABASE_URL: database.url, ADMIN_TOKEN }, { args: ['src/cli/main.ts', 'serve'] });
      assert.equal((await request(server.url, 'GET', '/healthz')).status, 200);
      assert.equal((await request(server.url, 'GET', '/v1/admin/capacity', { token: ADMIN_TOKEN })).status, 200);
      assert.equal(await server.kill('SIGTERM'), 0);
    } finally {
      await database.drop();
    }
  });

  it('with WORKERS=2 forks two workers, which run through the same command', async () => {
    const database = await createTestDatabase();
    const prefix = uniquePrefix();
    const base = `cli${process.pid}`;
    try {
      const env = {
        DATABASE_URL: database.url,
        REDIS_URL: redisUrl(),
        REDIS_KEY_PREFIX: prefix,
        ADMIN_TOKEN,
        WORKERS: '2',
        INSTANCE_ID: base,
      };
      const cluster = await spawnAgentd(env, { args: ['src/cli/main.ts', 'serve'] });
      try {
        // A new connection per request: round-robin reaches both workers.
        const seen = new Set<string>();
        await waitFor(
          async () => {
            const res = await request(cluster.url, 'GET', '/v1/admin/capacity', { token: ADMIN_TOKEN, headers: { connection: 'close' } });
            seen.add(res.body.instance_id as string);
            return seen.size === 2;
          },
          { what: 'answers from both workers' },
        );
        assert.deepEqual([...seen].sort(), [`${base}/1`, `${base}/2`]);
        assert.equal(await cluster.kill('SIGTERM'), 0);
      } finally {
        await cluster.kill('SIGKILL');
      }
    } finally {
      await database.drop();
      await cleanupPrefix(prefix);
    }
  });
});
