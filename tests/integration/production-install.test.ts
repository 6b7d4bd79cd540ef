import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ADMIN_TOKEN } from '../helpers/agentd.js';
import { request } from '../helpers/http.js';
import { type AgentdProcess, spawnAgentd } from '../helpers/process.js';
import { waitFor } from '../helpers/wait-for.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const run = promisify(execFile);

/**
 * What an operator deploys: the build, the manifest and lock file, and `npm start`'s pre-step;
 * then `npm ci --omit=dev` (offline, from the npm cache the project's own install filled). No
 * TypeScript, no tsx, no src/.
 */
async function productionInstall(dir: string): Promise<void> {
  await run(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--outDir', join(dir, 'dist')], {
    cwd: ROOT,
  });
  for (const file of ['package.json', 'package-lock.json', 'tools/build-if-stale.mjs']) await cp(join(ROOT, file), join(dir, file));
  await run('npm', ['ci', '--omit=dev', '--offline', '--no-audit', '--no-fund'], { cwd: dir, timeout: 120_000 });
}

describe('a production install (no devDependencies, no compiler)', () => {
  let dir: string;
  let agentd: AgentdProcess | undefined;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'agentd production-')); // a space in the path, as in many home folders
    await mkdir(join(dir, 'tools'));
    await productionInstall(dir);
  });
  after(async () => {
    await agentd?.kill('SIGTERM');
    await rm(dir, { recursive: true, force: true });
  });

  it('has neither TypeScript nor tsx installed', async () => {
    await assert.rejects(stat(join(dir, 'node_modules/typescript')), { code: 'ENOENT' });
    await assert.rejects(stat(join(dir, 'node_modules/tsx')), { code: 'ENOENT' });
  });

  it('starts with `npm start` on the embedded defaults without building, serves a run, and stops on SIGTERM', async () => {
    const built = (await stat(join(dir, 'dist/main.js'))).mtimeMs;
    const server = await spawnAgentd(
      { ADMIN_TOKEN, DATA_DIR: join(dir, 'data') },
      { command: ['npm', 'start', '--silent'], cwd: dir, group: true },
    );
    agentd = server;
    assert.equal((await stat(join(dir, 'dist/main.js'))).mtimeMs, built, 'the build was not redone');
    const { url } = server;
    const account = await request(url, 'POST', '/v1/admin/accounts', { token: ADMIN_TOKEN, body: { name: 'prod', tier: 'pro' } });
    assert.equal(account.status, 201, account.text);
    const key = account.body.api_key as string;
    const created = await request(url, 'POST', '/v1/runs', { token: key, body: { agent: 'echo', input: 'from production' } });
    assert.equal(created.status, 202, created.text);
    const ended = await waitFor(async () => {
      const res = await request(url, 'GET', `/v1/runs/${created.body.id as string}`, { token: key });
      return res.body.status === 'completed' ? res.body : undefined;
    });
    assert.deepEqual(ended.output, { role: 'assistant', content: 'from production' });
    // Ctrl-C's signal reaches the whole group; the server drains and exits, and nothing is left.
    await server.kill('SIGTERM');
    agentd = undefined;
    await assert.rejects(request(url, 'GET', '/healthz'), 'the server is gone');
  });
});
