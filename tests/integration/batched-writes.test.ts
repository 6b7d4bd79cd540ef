/**
 * Admissions and status changes written by group commit (AdmissionBatcher, TransitionBatcher)
 * on real Postgres and on PGlite: a batch applies the single-request rules to each request in
 * order, each caller gets its own result, and a failure reaches only the callers it concerns.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { TierLimits } from '../../src/config/tier-limits.js';
import { AccountRepository } from '../../src/db/account-repository.js';
import { AdmissionBatcher } from '../../src/db/admission-batcher.js';
import type { Database } from '../../src/db/database.js';
import { type AdmitResult, RunRepository } from '../../src/db/run-repository.js';
import { DependencyUnavailableError, type NewRun, type RunRecord } from '../../src/domain/index.js';
import { TransitionBatcher } from '../../src/db/transition-batcher.js';
import { type DatabaseFixture, pgliteFixture, postgresFixture } from '../helpers/databases.js';
import { unique } from '../helpers/ids.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';

const LIMITS: TierLimits = new Map([
  ['free', 1],
  ['pro', 5],
  ['big', 1_000],
]);
const SESSION_MAX = 2;
const UNIQUE_VIOLATION = '23505';

interface Fixture extends DatabaseFixture {
  /** A pool through a TCP proxy that can cut it off, where the adapter can have one. */
  readonly openProxied?: () => Promise<{ db: Database; cut(): void; restore(): void; close(): Promise<void> }>;
}

/** The repository's batch and single paths, counted; `failNextBatch` makes the next batch statement fail. */
function countingRuns(runs: RunRepository) {
  const calls = { admitMany: [] as number[], admit: 0, transitionMany: [] as number[], transition: 0 };
  let failure: unknown;
  const takeFailure = (): unknown => {
    const error = failure;
    failure = undefined;
    return error;
  };
  const store: Pick<RunRepository, 'admit' | 'admitMany' | 'transition' | 'transitionMany'> = {
    admitMany: (batch, tierLimits, sessionMax) => {
      calls.admitMany.push(batch.length);
      const error = takeFailure();
      return error === undefined ? runs.admitMany(batch, tierLimits, sessionMax) : Promise.reject(error);
    },
    admit: (run, tierLimits, sessionMax) => {
      calls.admit += 1;
      return runs.admit(run, tierLimits, sessionMax);
    },
    transitionMany: (batch) => {
      calls.transitionMany.push(batch.length);
      const error = takeFailure();
      return error === undefined ? runs.transitionMany(batch) : Promise.reject(error);
    },
    transition: (...args) => {
      calls.transition += 1;
      return runs.transition(...args);
    },
  };
  return {
    store,
    calls,
    failNextBatch: (error: unknown) => {
      failure = error;
    },
  };
}

function created(result: AdmitResult | undefined): RunRecord {
  assert.ok(result !== undefined && result.outcome === 'created', `expected created, got ${JSON.stringify(result)}`);
  return result.run;
}

/** `server`: the adapter talks to a server, so there can be a second instance and an outage. */
function batchContract(name: string, factory: () => Promise<Fixture>, { server }: { server: boolean }): void {
  describe(`batched writes: ${name}`, () => {
    let fx: Fixture;
    let db: Database;
    let accounts: AccountRepository;
    let runs: RunRepository;

    before(async () => {
      fx = await factory();
      db = fx.db;
      accounts = new AccountRepository(db);
      runs = new RunRepository(db);
    });

    after(async () => {
      await fx?.teardown();
    });

    async function newAccount(tier: string): Promise<string> {
      const { account } = await accounts.create(unique('acct'), tier);
      return account.id;
    }

    function newRun(accountId: string, overrides: Partial<NewRun> = {}): NewRun {
      return {
        id: randomUUID(),
        accountId,
        agent: 'echo',
        status: 'running',
        sessionId: null,
        input: { prompt: 'hello' },
        model: null,
        metadata: null,
        timeoutMs: 30_000,
        idempotencyKey: null,
        requestHash: null,
        instanceId: 'batch-test',
        ...overrides,
      };
    }

    /** A batcher over the counted repository; refused batches are recorded. */
    function admissionBatcher(store: Pick<RunRepository, 'admit' | 'admitMany'>) {
      const refused: Array<{ error: unknown; batchSize: number }> = [];
      const batcher = new AdmissionBatcher({ runs: store, onBatchRefused: (error, batchSize) => refused.push({ error, batchSize }) });
      return { batcher, refused };
    }

    /** Submits every run in the same turn, so they share one batch. */
    function admitTogether(batcher: AdmissionBatcher, batch: readonly NewRun[], sessionMax = SESSION_MAX) {
      return Promise.allSettled(batch.map((run) => batcher.admit(run, LIMITS, sessionMax)));
    }

    function fulfilled<T>(results: ReadonlyArray<PromiseSettledResult<T>>): T[] {
      return results.map((r) => {
        assert.equal(r.status, 'fulfilled', r.status === 'rejected' ? String(r.reason) : '');
        return (r as PromiseFulfilledResult<T>).value;
      });
    }

    async function count(table: 'runs' | 'run_leases', accountId: string): Promise<number> {
      const rows = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE account_id = $1`, [accountId]);
      return rows[0]?.n ?? -1;
    }

    describe('AdmissionBatcher', () => {
      it("admits exactly the account's limit from one batch of its admissions: the first to arrive", async () => {
        const counted = countingRuns(runs);
        const { batcher, refused } = admissionBatcher(counted.store);
        const accountId = await newAccount('pro');
        const batch = Array.from({ length: 40 }, () => newRun(accountId));
        const results = fulfilled(await admitTogether(batcher, batch));
        assert.deepEqual(counted.calls.admitMany, [40], 'one statement for the 40');
        assert.equal(counted.calls.admit, 0);
        assert.deepEqual(
          results.slice(0, 5).map((r) => created(r).id),
          batch.slice(0, 5).map((r) => r.id),
        );
        for (const r of results.slice(5)) assert.deepEqual(r, { outcome: 'account_limit', limit: 5, active: 5 });
        assert.equal(await count('runs', accountId), 5);
        assert.equal(await count('run_leases', accountId), 5);
        assert.deepEqual(refused, []);
        await batcher.close();
      });

      it('counts the runs of a batch against their session limit too', async () => {
        const { batcher } = admissionBatcher(runs);
        const accountId = await newAccount('pro');
        const batch = Array.from({ length: 9 }, (_, i) => newRun(accountId, { sessionId: `s${i % 3}` }));
        const results = fulfilled(await admitTogether(batcher, batch, 1));
        assert.deepEqual(
          results.map((r) => r.outcome),
          ['created', 'created', 'created', ...Array<string>(6).fill('session_limit')],
        );
        for (const r of results.slice(3)) assert.deepEqual(r, { outcome: 'session_limit', limit: 1, active: 1 });
        await batcher.close();
      });

      it('gives a repeated Idempotency-Key in one batch the run created first', async () => {
        const counted = countingRuns(runs);
        const { batcher } = admissionBatcher(counted.store);
        const accountId = await newAccount('pro');
        const batch = [
          newRun(accountId, { idempotencyKey: 'same' }),
          newRun(accountId, { idempotencyKey: 'same', agent: 'other' }),
          newRun(accountId, { idempotencyKey: 'different' }),
          newRun(accountId, { idempotencyKey: 'same' }),
        ];
        const results = fulfilled(await admitTogether(batcher, batch));
        assert.deepEqual(counted.calls.admitMany, [4]);
        const first = created(results[0]);
        assert.equal(first.id, batch[0]?.id);
        assert.deepEqual(results[1], { outcome: 'existing', run: first });
        assert.equal(created(results[2]).id, batch[2]?.id);
        assert.deepEqual(results[3], { outcome: 'existing', run: first });
        assert.equal(await count('runs', accountId), 2);
        await batcher.close();
      });

      it('refuses a repeated Idempotency-Key with another request hash in one batch, and admits the rest', async () => {
        const counted = countingRuns(runs);
        const { batcher } = admissionBatcher(counted.store);
        const accountId = await newAccount('pro');
        const batch = [
          newRun(accountId, { idempotencyKey: 'same', requestHash: 'a' }),
          newRun(accountId, { idempotencyKey: 'same', requestHash: 'b' }),
          newRun(accountId, { idempotencyKey: 'same', requestHash: 'a' }),
          newRun(accountId),
        ];
        const results = fulfilled(await admitTogether(batcher, batch));
        assert.deepEqual(counted.calls.admitMany, [4]);
        const first = created(results[0]);
        assert.deepEqual(results[1], { outcome: 'key_reused' });
        assert.deepEqual(results[2], { outcome: 'existing', run: first });
        assert.equal(created(results[3]).id, batch[3]?.id);
        assert.equal(await count('runs', accountId), 2);
        await batcher.close();
      });

      it('a refused admission does not affect the others of its batch', async () => {
        const counted = countingRuns(runs);
        const { batcher, refused } = admissionBatcher(counted.store);
        const full = await newAccount('free');
        created(await runs.admit(newRun(full), LIMITS, SESSION_MAX));
        const free = await newAccount('free');
        const pro = await newAccount('pro');
        const ghost = randomUUID();
        const batch = [newRun(ghost), newRun(full), newRun(free), newRun(pro), newRun(ghost)];
        const results = fulfilled(await admitTogether(batcher, batch));
        assert.deepEqual(counted.calls.admitMany, [5]);
        assert.deepEqual(results[0], { outcome: 'no_account' });
        assert.deepEqual(results[1], { outcome: 'account_limit', limit: 1, active: 1 });
        assert.equal(created(results[2]).id, batch[2]?.id);
        assert.equal(created(results[3]).id, batch[3]?.id);
        assert.deepEqual(results[4], { outcome: 'no_account' });
        assert.equal((await db.query(`SELECT 1 FROM runs WHERE account_id = $1`, [ghost])).length, 0);
        assert.deepEqual(refused, []);
        await batcher.close();
      });

      it('a request the database rejects fails alone: its batch is retried one at a time', async () => {
        const counted = countingRuns(runs);
        const { batcher, refused } = admissionBatcher(counted.store);
        const accountId = await newAccount('big');
        const taken = created(await runs.admit(newRun(accountId), LIMITS, SESSION_MAX));
        const batch = [newRun(accountId), newRun(accountId, { id: taken.id }), newRun(accountId)];
        const results = await admitTogether(batcher, batch);
        assert.deepEqual(counted.calls.admitMany, [3]);
        assert.equal(counted.calls.admit, 3, 'each request alone');
        assert.equal(refused.length, 1);
        assert.equal(refused[0]?.batchSize, 3);
        assert.equal((refused[0]?.error as { code?: unknown }).code, UNIQUE_VIOLATION);
        assert.equal(created((results[0] as PromiseFulfilledResult<AdmitResult>).value).id, batch[0]?.id);
        assert.equal(results[1]?.status, 'rejected');
        assert.equal(((results[1] as PromiseRejectedResult).reason as { code?: unknown }).code, UNIQUE_VIOLATION);
        assert.equal(created((results[2] as PromiseFulfilledResult<AdmitResult>).value).id, batch[2]?.id);
        assert.equal(await count('runs', accountId), 3);
        await batcher.close();
      });

      it("gives each caller its own run when a batch mixes many accounts' requests", async () => {
        const counted = countingRuns(runs);
        const { batcher } = admissionBatcher(counted.store);
        const ids = await Promise.all(Array.from({ length: 5 }, () => newAccount('big')));
        const batch = Array.from({ length: 60 }, (_, i) =>
          newRun(ids[(i * 7) % ids.length] as string, {
            input: { i },
            metadata: i % 2 === 0 ? { even: true } : null,
            sessionId: i % 3 === 0 ? null : `s${i}`,
            status: i % 4 === 0 ? 'queued' : 'running',
          }),
        );
        const results = fulfilled(await admitTogether(batcher, batch, 100));
        assert.deepEqual(counted.calls.admitMany, [60]);
        results.forEach((result, i) => {
          const run = created(result);
          const sent = batch[i] as NewRun;
          assert.equal(run.id, sent.id);
          assert.equal(run.accountId, sent.accountId);
          assert.deepEqual(run.input, { i });
          assert.deepEqual(run.metadata, sent.metadata);
          assert.equal(run.sessionId, sent.sessionId);
          assert.equal(run.status, sent.status);
          assert.equal(run.startedAt === null, sent.status === 'queued');
        });
        for (const result of results) assert.deepEqual(await runs.get(created(result).accountId, created(result).id), created(result));
        await batcher.close();
      });

      it('stores the same row as admit() does, whatever the optional fields hold', async () => {
        const { batcher } = admissionBatcher(runs);
        const stored = async (id: string) =>
          (
            await db.query(
              `SELECT to_jsonb(r) - 'id' - 'account_id' - 'created_at' - 'started_at' AS row,
                      r.input IS NULL AS input_null, r.metadata IS NULL AS metadata_null
               FROM runs r WHERE id = $1`,
              [id],
            )
          )[0];
        const variants: Array<Partial<NewRun>> = [
          { input: undefined, metadata: undefined },
          { input: null, metadata: null, model: 'gpt-x', sessionId: 'chat', idempotencyKey: 'k1', requestHash: 'h1', status: 'queued' },
          { input: 'a string \u2014 "quoted"', metadata: [1, { two: 2 }], timeoutMs: 1 },
        ];
        for (const variant of variants) {
          const single = created(await runs.admit(newRun(await newAccount('big'), variant), LIMITS, SESSION_MAX));
          const [result] = fulfilled(await admitTogether(batcher, [newRun(await newAccount('big'), variant)]));
          const batched = created(result);
          assert.deepEqual(await stored(batched.id), await stored(single.id), JSON.stringify(variant));
        }
        await batcher.close();
      });

      it('a database error reaches every caller of the batch, and the next batch works', async () => {
        const counted = countingRuns(runs);
        const { batcher, refused } = admissionBatcher(counted.store);
        const accountId = await newAccount('big');
        const outage = new DependencyUnavailableError('database');
        counted.failNextBatch(outage);
        const failed = await admitTogether(batcher, [newRun(accountId), newRun(accountId), newRun(accountId)]);
        for (const result of failed) {
          assert.equal(result.status, 'rejected');
          assert.equal((result as PromiseRejectedResult).reason, outage);
        }
        assert.equal(counted.calls.admit, 0, 'an outage is not retried request by request');
        assert.deepEqual(refused, []);
        const next = fulfilled(await admitTogether(batcher, [newRun(accountId), newRun(accountId)]));
        for (const result of next) created(result);
        assert.deepEqual(counted.calls.admitMany, [3, 2]);
        assert.equal(await count('runs', accountId), 2);
        await batcher.close();
      });

      it('refuses admissions after close', async () => {
        const { batcher } = admissionBatcher(runs);
        await batcher.close();
        await assert.rejects(batcher.admit(newRun(randomUUID()), LIMITS, SESSION_MAX), DependencyUnavailableError);
      });
    });

    describe('TransitionBatcher', () => {
      function transitionBatcher(store: Pick<RunRepository, 'transition' | 'transitionMany'>) {
        const refused: unknown[] = [];
        return { batcher: new TransitionBatcher({ runs: store, onBatchRefused: (error) => refused.push(error) }), refused };
      }

      async function admitted(status: 'queued' | 'running' = 'running'): Promise<RunRecord> {
        return created(await runs.admit(newRun(await newAccount('big'), { status }), LIMITS, SESSION_MAX));
      }

      it('applies a batch of status changes, each as transition() would, null where the run moved on', async () => {
        const counted = countingRuns(runs);
        const { batcher, refused } = transitionBatcher(counted.store);
        const [finishing, starting, failing, ended] = await Promise.all([admitted(), admitted('queued'), admitted(), admitted()]);
        assert.ok(finishing && starting && failing && ended);
        assert.ok(await runs.transition(ended.id, 'running', 'completed'));
        const error = { code: 'agent_error', message: 'no \u2014 "twice"' };
        const results = await Promise.allSettled([
          batcher.transition(finishing.id, 'running', 'completed', { output: { text: 'done', none: null } }),
          batcher.transition(starting.id, 'queued', 'running'),
          batcher.transition(failing.id, 'running', 'failed', { error }),
          batcher.transition(ended.id, 'running', 'cancelled', { error: { code: 'cancelled', message: 'late' } }),
          batcher.transition(randomUUID(), 'running', 'completed'),
          batcher.transition(starting.id, 'queued', 'completed'),
        ]);
        assert.deepEqual(counted.calls.transitionMany, [5], 'the forbidden transition never reached the database');
        assert.equal(results[5]?.status, 'rejected');
        assert.match(String((results[5] as PromiseRejectedResult).reason), /invalid transition queued -> completed/);
        const [done, started, failed, late, unknown] = fulfilled(results.slice(0, 5));
        assert.equal(done?.status, 'completed');
        assert.deepEqual(done?.output, { text: 'done', none: null });
        assert.ok(done?.finishedAt instanceof Date);
        assert.equal(started?.status, 'running');
        assert.ok(started?.startedAt instanceof Date);
        assert.equal(started?.finishedAt, null);
        assert.equal(failed?.status, 'failed');
        assert.deepEqual(failed?.error, error);
        assert.equal(failed?.output, undefined);
        assert.equal(late, null);
        assert.equal(unknown, null);
        for (const run of [done, started, failed]) assert.deepEqual(await runs.get(run!.accountId, run!.id), run);
        assert.equal((await runs.get(ended.accountId, ended.id))?.status, 'completed');
        assert.equal(await count('run_leases', finishing.accountId), 0, 'a final status releases the lease');
        assert.equal(await count('run_leases', starting.accountId), 1);
        assert.deepEqual(refused, []);
        await batcher.close();
      });

      it('of two changes to one run in one batch, exactly one applies', async () => {
        const counted = countingRuns(runs);
        const { batcher } = transitionBatcher(counted.store);
        const run = await admitted();
        const results = fulfilled(
          await Promise.allSettled([
            batcher.transition(run.id, 'running', 'completed', { output: 'done' }),
            batcher.transition(run.id, 'running', 'cancelled', { error: { code: 'cancelled', message: 'by user' } }),
          ]),
        );
        assert.deepEqual(counted.calls.transitionMany, [2]);
        assert.equal(results.filter((r) => r !== null).length, 1);
        assert.deepEqual(
          await runs.get(run.accountId, run.id),
          results.find((r) => r !== null),
        );
        await batcher.close();
      });

      it('a database error reaches every change of the batch, and the next batch works', async () => {
        const counted = countingRuns(runs);
        const { batcher } = transitionBatcher(counted.store);
        const [a, b] = await Promise.all([admitted(), admitted()]);
        assert.ok(a && b);
        const outage = new DependencyUnavailableError('database');
        counted.failNextBatch(outage);
        const failed = await Promise.allSettled([a, b].map((run) => batcher.transition(run.id, 'running', 'completed')));
        assert.deepEqual(
          failed.map((r) => r.status === 'rejected' && r.reason === outage),
          [true, true],
        );
        assert.equal(counted.calls.transition, 0);
        const retried = fulfilled(await Promise.allSettled([a, b].map((run) => batcher.transition(run.id, 'running', 'completed'))));
        assert.deepEqual(
          retried.map((r) => r?.status),
          ['completed', 'completed'],
        );
        await batcher.close();
      });
    });

    if (server) {
      describe('two instances and real outages', () => {
        it("two instances' batches over the same accounts in opposite orders neither deadlock nor overshoot", async () => {
          const other = fx.openAnother?.();
          assert.ok(other);
          const here = admissionBatcher(runs);
          const there = admissionBatcher(new RunRepository(other));
          try {
            for (let round = 0; round < 5; round += 1) {
              const ids = await Promise.all(Array.from({ length: 20 }, () => newAccount('free')));
              const batchHere = ids.map((id) => newRun(id));
              const batchThere = [...ids].reverse().map((id) => newRun(id));
              const [a, b] = await Promise.all([admitTogether(here.batcher, batchHere), admitTogether(there.batcher, batchThere)]);
              const outcomes = [...fulfilled(a), ...fulfilled(b)].map((r) => r.outcome);
              assert.equal(outcomes.filter((o) => o === 'created').length, 20);
              assert.equal(outcomes.filter((o) => o === 'account_limit').length, 20);
              for (const id of ids) assert.equal(await count('run_leases', id), 1);
            }
            assert.deepEqual(here.refused, [], 'no batch was refused (a deadlock would be)');
            assert.deepEqual(there.refused, []);
          } finally {
            await here.batcher.close();
            await there.batcher.close();
            await other.close();
          }
        });

        it('an unreachable database fails every caller of the batch with 503; the next batch after it is back works', async () => {
          const proxied = await fx.openProxied?.();
          assert.ok(proxied);
          const { batcher, refused } = admissionBatcher(new RunRepository(proxied.db));
          try {
            const accountId = await newAccount('big');
            fulfilled(await admitTogether(batcher, [newRun(accountId)])); // the pool is connected
            proxied.cut();
            const failed = await admitTogether(batcher, [newRun(accountId), newRun(accountId), newRun(accountId)]);
            for (const result of failed) {
              assert.equal(result.status, 'rejected');
              assert.ok(
                (result as PromiseRejectedResult).reason instanceof DependencyUnavailableError,
                String((result as PromiseRejectedResult).reason),
              );
            }
            proxied.restore();
            for (const result of fulfilled(await admitTogether(batcher, [newRun(accountId), newRun(accountId)]))) created(result);
            assert.deepEqual(refused, []);
          } finally {
            proxied.restore();
            await batcher.close();
            await proxied.close();
          }
        });
      });
    }
  });
}

async function postgresFactory(): Promise<Fixture> {
  const fx = await postgresFixture({ max: 4, acquireTimeoutMs: 2_000, applicationName: 'agentd-batch-test', migrate: true });
  return {
    ...fx,
    async openProxied() {
      const direct = new URL(fx.url);
      const proxy = await startTcpProxy(Number(direct.port || 5432), direct.hostname);
      const viaProxy = new URL(fx.url);
      viaProxy.host = proxy.address;
      const proxiedDb = fx.open(viaProxy.toString());
      return {
        db: proxiedDb,
        cut: () => proxy.cut(),
        restore: () => proxy.restore(),
        async close() {
          await proxiedDb.close();
          await proxy.close();
        },
      };
    },
  };
}

describe('batched writes', () => {
  batchContract('postgres', postgresFactory, { server: true });
  batchContract('pglite (in-memory)', () => pgliteFixture({ migrate: true }), { server: false });
});
