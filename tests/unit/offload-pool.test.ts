import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { autoOffloadThreads, OffloadPool, OffloadQueueFullError } from '../../src/concurrency/offload-pool.js';
import { agentsDir } from '../helpers/agents-dir.js';

describe('OffloadPool', () => {
  let dir: Awaited<ReturnType<typeof agentsDir>>;
  const signal = new AbortController().signal;

  before(async () => {
    dir = await agentsDir();
  });
  after(() => dir.remove());

  it('sizes itself from the CPUs, at most 16 threads', () => {
    assert.deepEqual([1, 2, 8, 16, 64].map(autoOffloadThreads), [1, 2, 8, 16, 16]);
  });

  it('resolves a module relative to its base folder, absolute, or as a file URL; refuses a relative one without a base', async () => {
    const pool = new OffloadPool({ threads: 1, queueMax: 4, baseDir: dir.dir });
    const bare = new OffloadPool({ threads: 1, queueMax: 4, baseDir: undefined });
    try {
      const absolute = join(dir.dir, 'lib/hash.mjs');
      for (const module of ['lib/hash.mjs', absolute, pathToFileURL(absolute), pathToFileURL(absolute).href]) {
        const result = await pool.run<{ rounds: number }>(module, 'hashFor', { ms: 1 }, signal);
        assert.ok(result.rounds > 0, String(module));
      }
      await assert.rejects(bare.run('lib/hash.mjs', 'hashFor', { ms: 1 }, signal), { name: 'TypeError', message: /AGENTS_DIR is unset/ });
      assert.equal((await bare.run<{ rounds: number }>(absolute, 'hashFor', { ms: 1 }, signal)).rounds > 0, true);
    } finally {
      await pool.close();
      await bare.close();
    }
  });

  it('adds nothing per task: 25 tasks leave no listener behind (no MaxListenersExceededWarning)', async () => {
    const pool = new OffloadPool({ threads: 1, queueMax: 4, baseDir: dir.dir });
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on('warning', onWarning);
    try {
      for (let i = 0; i < 25; i++) await pool.run('lib/hash.mjs', 'hashFor', { ms: 1 }, signal);
      await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
      assert.deepEqual(
        warnings.filter((w) => w.name === 'MaxListenersExceededWarning').map((w) => w.message),
        [],
      );
    } finally {
      process.off('warning', onWarning);
      await pool.close();
    }
  });

  it('refuses a task past threads + queue at once with OffloadQueueFullError, and runs the rest', async () => {
    const pool = new OffloadPool({ threads: 1, queueMax: 1, baseDir: dir.dir });
    try {
      const first = pool.run('lib/hash.mjs', 'hashFor', { ms: 300 }, signal);
      const second = pool.run('lib/hash.mjs', 'hashFor', { ms: 1 }, signal);
      await assert.rejects(pool.run('lib/hash.mjs', 'hashFor', { ms: 1 }, signal), (error: unknown) => {
        assert.ok(error instanceof OffloadQueueFullError);
        assert.equal(error.code, 'offload_queue_full');
        return true;
      });
      await Promise.all([first, second]);
      assert.equal(pool.inFlightCount, 0);
    } finally {
      await pool.close();
    }
  });

  it('rejects with the signal’s reason when aborted, and refuses work once closed', async () => {
    const pool = new OffloadPool({ threads: 1, queueMax: 1, baseDir: dir.dir });
    const controller = new AbortController();
    const task = pool.run('lib/hash.mjs', 'hashFor', { ms: 60_000 }, controller.signal);
    const reason = new Error('cancelled by the test');
    controller.abort(reason);
    await assert.rejects(task, (error) => error === reason);
    await pool.close();
    await assert.rejects(pool.run('lib/hash.mjs', 'hashFor', { ms: 1 }, signal), /offload pool is closed/);
    assert.equal(pool.close(), pool.close());
  });
});
