import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RunRecord } from '../../src/domain/index.js';
import { RunEndRecovery, type RunEndRecoveryDeps } from '../../src/runtime/run-end-recovery.js';

const run = (finishedAgoMs: number | null, status: RunRecord['status'] = 'failed'): RunRecord => ({
  id: 'run-1',
  accountId: 'acct',
  agent: 'echo',
  status,
  sessionId: null,
  input: null,
  model: null,
  metadata: null,
  timeoutMs: 1_000,
  instanceId: 'dead',
  createdAt: new Date(),
  startedAt: null,
  finishedAt: finishedAgoMs === null ? null : new Date(Date.now() - finishedAgoMs),
  error: { code: 'agent_error', message: 'boom' },
  output: undefined,
});

function recovery(get: () => Promise<RunRecord | null>) {
  const ends: Array<{ runId: string; data: unknown }> = [];
  const warnings: Array<Record<string, unknown> | undefined> = [];
  const logger = {
    error: () => undefined,
    warn: (_message: string, meta?: Record<string, unknown>) => warnings.push(meta),
    info: () => undefined,
    debug: () => undefined,
    child: () => logger,
    withContext: <T>(_fields: Record<string, unknown>, fn: () => T): T => fn(),
  };
  const deps: RunEndRecoveryDeps = {
    runs: { get, interruptInstance: async () => [] },
    eventLog: {
      ensureEnd: async (runId: string, data: unknown) => {
        ends.push({ runId, data });
      },
    },
    logger,
  };
  return { recovery: new RunEndRecovery(deps), ends, warnings };
}

describe('RunEndRecovery.endIfMissing', () => {
  it('writes the `end` of a run final for longer than the grace, with its status and error', async () => {
    const { recovery: r, ends } = recovery(async () => run(60_000));
    assert.equal(await r.endIfMissing({ id: 'run-1', accountId: 'acct' }), true);
    assert.deepEqual(ends, [{ runId: 'run-1', data: { status: 'failed', error: { code: 'agent_error', message: 'boom' } } }]);
  });

  it('leaves a run alone while it runs or within the grace', async () => {
    for (const record of [run(null, 'running'), run(1_000)]) {
      const { recovery: r, ends } = recovery(async () => record);
      assert.equal(await r.endIfMissing({ id: 'run-1', accountId: 'acct' }), false);
      assert.deepEqual(ends, []);
    }
  });

  it('logs a database failure with its error and answers false', async () => {
    const failure = new Error('database away');
    const { recovery: r, warnings } = recovery(async () => {
      throw failure;
    });
    assert.equal(await r.endIfMissing({ id: 'run-1', accountId: 'acct' }), false);
    assert.deepEqual(warnings, [{ run_id: 'run-1', error: failure }]);
  });
});
