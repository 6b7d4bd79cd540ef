/**
 * The storage contract: migrations, AccountRepository, RunRepository and EventArchiveRepository (event-archive-contract.ts) behave the same on real
 * Postgres and on embedded PGlite. Each adapter gets one migrated database for the file (tests
 * isolate themselves with their own accounts and instance ids); tests that need an unmigrated
 * database make and tear down their own.
 */
import assert from 'node:assert/strict';
import crypto, { randomUUID } from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';
import { after, before, describe, it } from 'node:test';
import type { TierLimits } from '../../src/config/tier-limits.js';
import { AccountRepository, hashApiKey, KEY_PREFIX_LENGTH } from '../../src/db/account-repository.js';
import type { Database } from '../../src/db/database.js';
import { migrate } from '../../src/db/migrations.js';
import { InstanceRepository } from '../../src/db/instance-repository.js';
import { type AdmitResult, encodeRun, encodeStatusChange, RunRepository } from '../../src/db/run-repository.js';
import { WebhookRepository } from '../../src/db/webhook-repository.js';
import { ENDINGS, isFinal, type NewRun, RUN_STATUSES, type RunRecord, type RunStatus, transitionPairs } from '../../src/domain/index.js';
import { type DatabaseFixture, type FixtureOptions, pgliteFixture, postgresFixture } from '../helpers/databases.js';
import { eventArchiveContract } from '../helpers/event-archive-contract.js';
import { unique } from '../helpers/ids.js';

const CHECK_VIOLATION = '23514';
const FINAL_STATUSES = RUN_STATUSES.filter(isFinal);
const LIMITS: TierLimits = new Map([
  ['free', 1],
  ['pro', 5],
  ['big', 1_000],
]);
const SESSION_MAX = 2;

/** A fresh database on the adapter; unmigrated unless asked. */
type Factory = (options?: FixtureOptions) => Promise<DatabaseFixture>;

function sqlState(err: unknown): unknown {
  return (err as { code?: unknown }).code;
}

function assertCreated(result: AdmitResult): RunRecord {
  assert.equal(result.outcome, 'created', `expected created, got ${JSON.stringify(result)}`);
  assert.ok('run' in result);
  return result.run;
}

function storageContract(name: string, factory: Factory): void {
  describe(`storage contract: ${name}`, () => {
    let fx: DatabaseFixture;
    let db: Database;
    let accounts: AccountRepository;
    let runs: RunRepository;

    before(async () => {
      fx = await factory({ migrate: true });
      db = fx.db;
      accounts = new AccountRepository(db);
      runs = new RunRepository(db);
    });

    after(async () => {
      await fx?.teardown();
    });

    async function newAccount(tier = 'free'): Promise<string> {
      const { account } = await accounts.create(unique('acct'), tier);
      return account.id;
    }

    function newRun(accountId: string, instanceId: string, overrides: Partial<NewRun> = {}): NewRun {
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
        instanceId,
        ...overrides,
      };
    }

    async function admitCreated(
      accountId: string,
      instanceId: string,
      overrides: Partial<NewRun> = {},
      sessionMax = SESSION_MAX,
    ): Promise<RunRecord> {
      return assertCreated(await runs.admit(newRun(accountId, instanceId, overrides), LIMITS, sessionMax));
    }

    async function leaseCount(where: { runId?: string; accountId?: string }): Promise<number> {
      const rows = await db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM run_leases
         WHERE ($1::uuid IS NULL OR run_id = $1) AND ($2::uuid IS NULL OR account_id = $2)`,
        [where.runId ?? null, where.accountId ?? null],
      );
      return rows[0]?.n ?? -1;
    }

    async function runCount(accountId: string): Promise<number> {
      const rows = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM runs WHERE account_id = $1`, [accountId]);
      return rows[0]?.n ?? -1;
    }

    /** A run of its own account that has reached `status` through the repository. */
    async function runInStatus(status: RunStatus, instanceId = unique('inst')): Promise<RunRecord> {
      const accountId = await newAccount('big');
      const run = await admitCreated(accountId, instanceId, { status: status === 'queued' ? 'queued' : 'running' });
      if (status === 'queued' || status === 'running') return run;
      const ended = await runs.transition(run.id, 'running', status);
      assert.ok(ended);
      return ended;
    }

    /**
     * Starts `count` admissions at once and returns their results. Where the adapter can open a
     * second pool, a transaction there holds run_leases exclusively until every admission the pool
     * lets in flight is waiting on a lock, so they truly collide rather than happening to run one
     * after another on a cold pool.
     */
    async function admitAtOnce(count: number, make: (i: number) => NewRun, sessionMax: number): Promise<AdmitResult[]> {
      const start = () => Promise.all(Array.from({ length: count }, (_, i) => runs.admit(make(i), LIMITS, sessionMax)));
      const holder = fx.openAnother?.();
      if (holder === undefined) return start();
      let pending: Promise<AdmitResult[]> | undefined;
      try {
        await holder.transaction(async (tx) => {
          await tx.query(`LOCK TABLE run_leases IN ACCESS EXCLUSIVE MODE`);
          pending = start();
          pending.catch(() => {}); // awaited below; this only avoids an unhandled rejection if the holder fails
          const want = Math.min(count, db.stats().max);
          const deadline = Date.now() + 15_000;
          for (;;) {
            // pg_locks is read live on every call (pg_stat_activity would be a per-transaction snapshot).
            const [row] = await tx.query<{ n: number }>(
              `SELECT count(DISTINCT pid)::int AS n FROM pg_locks
               WHERE NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
            );
            const waiting = row?.n ?? 0;
            if (waiting >= want) break;
            if (Date.now() > deadline) throw new Error(`only ${waiting} of ${want} admissions reached the lock`);
          }
        });
      } finally {
        await holder.close();
      }
      assert.ok(pending);
      return pending;
    }

    describe('migrate', () => {
      it('is idempotent: running it again on a migrated database changes nothing', async () => {
        const local = await factory();
        try {
          await migrate(local.db);
          const before = await local.db.query(`SELECT id, name, applied_at FROM agentd_migrations ORDER BY id`);
          assert.ok(before.length >= 1);
          await migrate(local.db);
          await migrate(local.db);
          assert.deepEqual(await local.db.query(`SELECT id, name, applied_at FROM agentd_migrations ORDER BY id`), before);
          // The schema works after the repeats.
          const { account } = await new AccountRepository(local.db).create('after-remigrate', 'free');
          const repo = new RunRepository(local.db);
          assertCreated(await repo.admit(newRun(account.id, 'i1'), LIMITS, SESSION_MAX));
        } finally {
          await local.teardown();
        }
      });

      it('applies once when two migrate calls race (two pools where the adapter allows it)', async () => {
        const local = await factory();
        const other = local.openAnother?.() ?? local.db;
        try {
          const results = await Promise.allSettled([migrate(local.db), migrate(other), migrate(local.db)]);
          for (const r of results) assert.equal(r.status, 'fulfilled', r.status === 'rejected' ? String(r.reason) : '');
          const applied = await local.db.query<{ id: number }>(`SELECT id FROM agentd_migrations ORDER BY id`);
          const ids = applied.map((r) => Number(r.id));
          assert.deepEqual(ids, [...new Set(ids)]);
          assert.ok(ids.includes(1));
          const transitions = await local.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM run_transitions`);
          assert.equal(transitions[0]?.n, transitionPairs().length, 'the transition table was filled exactly once');
        } finally {
          if (other !== local.db) await other.close();
          await local.teardown();
        }
      });

      it('stores exactly the JavaScript transition table for the trigger', async () => {
        const rows = await db.query<{ from_status: string; to_status: string }>(
          `SELECT from_status, to_status FROM run_transitions ORDER BY from_status, to_status`,
        );
        const expected = transitionPairs()
          .map(([from, to]) => ({ from_status: from, to_status: to }))
          .sort((a, b) => (a.from_status + ' ' + a.to_status < b.from_status + ' ' + b.to_status ? -1 : 1));
        assert.deepEqual(rows, expected);
      });
    });

    describe('AccountRepository', () => {
      it('create returns the account and a key whose prefix is its first 8 characters', async () => {
        const name = unique('alice');
        const { account, key } = await accounts.create(name, 'pro');
        assert.equal(account.name, name);
        assert.equal(account.tier, 'pro');
        assert.ok(account.createdAt instanceof Date);
        assert.equal(KEY_PREFIX_LENGTH, 8);
        assert.equal(key.prefix.length, 8);
        assert.equal(key.prefix, key.apiKey.slice(0, 8));
        assert.ok(key.apiKey.length >= 40, 'the key carries enough entropy');
        const found = await accounts.findByKeyHash(hashApiKey(key.apiKey));
        assert.deepEqual(found, account);
      });

      it('stores only the hash of the key, never the key itself', async () => {
        const { account, key } = await accounts.create(unique('hashed'), 'free');
        const rows = await db.query(`SELECT * FROM api_keys WHERE account_id = $1`, [account.id]);
        assert.equal(rows.length, 1);
        const row = rows[0]!;
        assert.equal(row.prefix, key.prefix);
        assert.equal(row.key_hash, hashApiKey(key.apiKey));
        assert.notEqual(row.key_hash, key.apiKey);
        for (const [column, value] of Object.entries(row)) {
          assert.ok(!(typeof value === 'string' && value.includes(key.apiKey)), `column ${column} holds the key`);
        }
        // Looking up by the raw key (instead of its hash) or by a wrong key finds nothing.
        assert.equal(await accounts.findByKeyHash(key.apiKey), null);
        assert.equal(await accounts.findByKeyHash(hashApiKey(key.apiKey + 'x')), null);
      });

      it('issueKey adds a working key, and returns null for an unknown account', async () => {
        const { account, key } = await accounts.create(unique('multi'), 'free');
        const second = await accounts.issueKey(account.id);
        assert.ok(second);
        assert.notEqual(second.apiKey, key.apiKey);
        assert.notEqual(second.prefix, key.prefix);
        assert.equal(second.prefix, second.apiKey.slice(0, 8));
        assert.equal((await accounts.findByKeyHash(hashApiKey(second.apiKey)))?.id, account.id);
        assert.equal((await accounts.findByKeyHash(hashApiKey(key.apiKey)))?.id, account.id);

        const ghost = randomUUID();
        assert.equal(await accounts.issueKey(ghost), null);
        const rows = await db.query(`SELECT 1 FROM api_keys WHERE account_id = $1`, [ghost]);
        assert.equal(rows.length, 0);
      });

      it("draws another key when a new key's prefix collides with an existing one, in create and issueKey", async () => {
        const taken = await accounts.create(unique('taken'), 'free');
        // Bytes of a different key that starts with the same 8 characters (6 bytes) as the taken one.
        const collidingBytes = (): Buffer => {
          const bytes = Buffer.from(taken.key.apiKey, 'base64url');
          bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 0xff;
          return bytes;
        };
        assert.equal(collidingBytes().toString('base64url').slice(0, 8), taken.key.prefix);
        const name = unique('second');
        const realRandomBytes = crypto.randomBytes;
        let forced = 0;
        const withCollidingFirstDraw = async <T>(fn: () => Promise<T>): Promise<T> => {
          let first = true;
          (crypto as { randomBytes: unknown }).randomBytes = (size: number) => {
            if (first) {
              first = false;
              forced += 1;
              return collidingBytes();
            }
            return realRandomBytes(size);
          };
          syncBuiltinESMExports();
          try {
            return await fn();
          } finally {
            crypto.randomBytes = realRandomBytes;
            syncBuiltinESMExports();
          }
        };

        const created = await withCollidingFirstDraw(() => accounts.create(name, 'free'));
        assert.equal(forced, 1, 'the colliding key was drawn');
        assert.notEqual(created.key.prefix, taken.key.prefix);
        assert.equal(created.key.prefix, created.key.apiKey.slice(0, 8));
        assert.equal((await accounts.findByKeyHash(hashApiKey(created.key.apiKey)))?.id, created.account.id);
        assert.equal((await accounts.findByKeyHash(hashApiKey(taken.key.apiKey)))?.id, taken.account.id);
        assert.deepEqual(
          (await accounts.get(created.account.id))?.keys.map((k) => k.prefix),
          [created.key.prefix],
        );

        const issued = await withCollidingFirstDraw(() => accounts.issueKey(created.account.id));
        assert.equal(forced, 2);
        assert.ok(issued);
        assert.notEqual(issued.prefix, taken.key.prefix);
        assert.equal((await accounts.findByKeyHash(hashApiKey(issued.apiKey)))?.id, created.account.id);
        assert.equal((await accounts.get(taken.account.id))?.keys.length, 1, "the taken key's account gained nothing");
      });

      it('revokeKey disables exactly that key, once', async () => {
        const { account, key } = await accounts.create(unique('revoke'), 'free');
        const kept = await accounts.issueKey(account.id);
        assert.ok(kept);
        assert.equal(await accounts.revokeKey(key.prefix), account.id);
        assert.equal(await accounts.findByKeyHash(hashApiKey(key.apiKey)), null);
        assert.equal(await accounts.revokeKey(key.prefix), null, 'a second revoke finds no active key');
        assert.equal((await accounts.findByKeyHash(hashApiKey(kept.apiKey)))?.id, account.id, 'the other key still works');
        assert.equal(await accounts.revokeKey('nope1234'), null);
      });

      it('setTier changes the tier seen by key lookups and by admission; null for an unknown account', async () => {
        const { account, key } = await accounts.create(unique('tiered'), 'free');
        const instanceId = unique('inst');
        await admitCreated(account.id, instanceId);
        assert.equal((await runs.admit(newRun(account.id, instanceId), LIMITS, SESSION_MAX)).outcome, 'account_limit');

        const updated = await accounts.setTier(account.id, 'pro');
        assert.deepEqual(updated, { ...account, tier: 'pro' });
        assert.equal((await accounts.get(account.id))?.tier, 'pro');
        assert.equal((await accounts.findByKeyHash(hashApiKey(key.apiKey)))?.tier, 'pro');
        await admitCreated(account.id, instanceId);

        assert.equal(await accounts.setTier(randomUUID(), 'pro'), null);
      });

      it('get returns the account with its keys in issue order, revoked ones marked; null when unknown', async () => {
        const { account, key } = await accounts.create(unique('listed'), 'free');
        const second = await accounts.issueKey(account.id);
        assert.ok(second);
        await accounts.revokeKey(key.prefix);
        const got = await accounts.get(account.id);
        assert.ok(got);
        assert.equal(got.id, account.id);
        assert.equal(got.name, account.name);
        assert.equal(got.tier, 'free');
        assert.deepEqual(
          got.keys.map((k) => k.prefix),
          [key.prefix, second.prefix],
        );
        assert.ok(got.keys[0]?.revokedAt instanceof Date, 'the revoked key shows when');
        assert.equal(got.keys[1]?.revokedAt, null);
        for (const k of got.keys) {
          assert.ok(k.createdAt instanceof Date);
          assert.deepEqual(Object.keys(k).sort(), ['createdAt', 'prefix', 'revokedAt'], 'no secret or hash is listed');
        }
        assert.equal(await accounts.get(randomUUID()), null);
      });
    });

    describe('RunRepository.admit', () => {
      it("creates a 'running' run with started_at set, the same as get() reads back", async () => {
        const accountId = await newAccount('pro');
        const instanceId = unique('inst');
        const before = Date.now();
        const run = await admitCreated(accountId, instanceId, {
          agent: 'summarise',
          sessionId: 's1',
          input: { text: 'hi', list: [1, 'two', null] },
          model: 'gpt-x',
          metadata: { team: 'a' },
          timeoutMs: 1234,
        });
        assert.equal(run.accountId, accountId);
        assert.equal(run.agent, 'summarise');
        assert.equal(run.status, 'running');
        assert.equal(run.sessionId, 's1');
        assert.deepEqual(run.input, { text: 'hi', list: [1, 'two', null] });
        assert.equal(run.model, 'gpt-x');
        assert.deepEqual(run.metadata, { team: 'a' });
        assert.equal(run.timeoutMs, 1234);
        assert.equal(run.instanceId, instanceId);
        assert.ok(run.createdAt instanceof Date);
        assert.ok(Math.abs(run.createdAt.getTime() - before) < 60_000);
        assert.ok(run.startedAt instanceof Date, 'a run admitted as running has started');
        assert.ok(Math.abs(run.startedAt.getTime() - before) < 60_000);
        assert.equal(run.finishedAt, null);
        assert.equal(run.error, null);
        assert.equal(run.output, undefined);
        assert.deepEqual(await runs.get(accountId, run.id), run);
        assert.equal(await leaseCount({ runId: run.id }), 1);
      });

      it("creates a 'queued' run without started_at", async () => {
        const accountId = await newAccount('pro');
        const run = await admitCreated(accountId, unique('inst'), { status: 'queued', input: undefined });
        assert.equal(run.status, 'queued');
        assert.equal(run.startedAt, null);
        assert.equal(run.input, null);
        assert.deepEqual(await runs.get(accountId, run.id), run);
        assert.equal(await leaseCount({ runId: run.id }), 1, 'a queued run holds a lease too');
      });

      it("returns 'existing' with the same run for a repeated Idempotency-Key, even at the limit", async () => {
        const accountId = await newAccount('free');
        const instanceId = unique('inst');
        const first = await admitCreated(accountId, instanceId, { idempotencyKey: 'key-1' });
        const again = await runs.admit(newRun(accountId, instanceId, { idempotencyKey: 'key-1', agent: 'other' }), LIMITS, SESSION_MAX);
        assert.equal(again.outcome, 'existing');
        assert.ok('run' in again);
        assert.equal(again.run.id, first.id);
        assert.equal(again.run.agent, 'echo', 'the original run, not the repeated request');
        assert.deepEqual(again.run, await runs.get(accountId, first.id));
        assert.equal(await runCount(accountId), 1);

        // A different key is a new request, refused by the free tier's limit of 1.
        const other = await runs.admit(newRun(accountId, instanceId, { idempotencyKey: 'key-2' }), LIMITS, SESSION_MAX);
        assert.equal(other.outcome, 'account_limit');

        // After the run ends, the key still names it.
        assert.ok(await runs.transition(first.id, 'running', 'completed'));
        const afterEnd = await runs.admit(newRun(accountId, instanceId, { idempotencyKey: 'key-1' }), LIMITS, SESSION_MAX);
        assert.equal(afterEnd.outcome, 'existing');
        assert.ok('run' in afterEnd);
        assert.equal(afterEnd.run.id, first.id);
        assert.equal(afterEnd.run.status, 'completed');
        assert.equal(await runCount(accountId), 1);
      });

      it("returns 'key_reused' for a repeated Idempotency-Key with another request hash, and stores nothing", async () => {
        const accountId = await newAccount('pro');
        const instanceId = unique('inst');
        const first = await admitCreated(accountId, instanceId, { idempotencyKey: 'key-h', requestHash: 'hash-a' });
        const same = await runs.admit(
          newRun(accountId, instanceId, { idempotencyKey: 'key-h', requestHash: 'hash-a' }),
          LIMITS,
          SESSION_MAX,
        );
        assert.deepEqual(same, { outcome: 'existing', run: first });
        const other = await runs.admit(
          newRun(accountId, instanceId, { idempotencyKey: 'key-h', requestHash: 'hash-b' }),
          LIMITS,
          SESSION_MAX,
        );
        assert.deepEqual(other, { outcome: 'key_reused' });
        assert.equal(await runCount(accountId), 1);
        assert.equal(await leaseCount({ accountId }), 1);

        // The same rule where a draining or full instance looks the key up.
        assert.deepEqual(await runs.findByIdempotencyKey(accountId, 'key-h', 'hash-a'), { outcome: 'existing', run: first });
        assert.deepEqual(await runs.findByIdempotencyKey(accountId, 'key-h', 'hash-b'), { outcome: 'key_reused' });
        assert.equal(await runs.findByIdempotencyKey(accountId, 'key-unused', 'hash-a'), null);

        // A run stored without a hash (before migration 4, or by an older instance) matches any request.
        const legacy = await admitCreated(accountId, instanceId, { idempotencyKey: 'key-legacy', requestHash: null });
        const repeat = await runs.admit(
          newRun(accountId, instanceId, { idempotencyKey: 'key-legacy', requestHash: 'hash-c' }),
          LIMITS,
          SESSION_MAX,
        );
        assert.deepEqual(repeat, { outcome: 'existing', run: legacy });
        assert.deepEqual(await runs.findByIdempotencyKey(accountId, 'key-legacy', 'hash-c'), { outcome: 'existing', run: legacy });
      });

      it('the previous agentd_admit signature still admits, without a request hash (rolling upgrade)', async () => {
        const accountId = await newAccount('pro');
        const id = randomUUID();
        const [row] = await db.query<{ outcome: string }>(
          `SELECT outcome FROM agentd_admit($1, $2, 'echo', 'running', NULL, 'null'::jsonb, NULL, NULL, 1000, 'key-old', 'old', $3::jsonb, 2)`,
          [id, accountId, JSON.stringify(Object.fromEntries(LIMITS))],
        );
        assert.equal(row?.outcome, 'created');
        const again = await runs.admit(
          newRun(accountId, 'new', { idempotencyKey: 'key-old', requestHash: 'hash-new' }),
          LIMITS,
          SESSION_MAX,
        );
        assert.equal(again.outcome, 'existing');
        assert.ok('run' in again && again.run.id === id);
      });

      it("the same Idempotency-Key from another account creates that account's own run", async () => {
        const a = await newAccount('free');
        const b = await newAccount('free');
        const instanceId = unique('inst');
        const runA = await admitCreated(a, instanceId, { idempotencyKey: 'shared' });
        const runB = await admitCreated(b, instanceId, { idempotencyKey: 'shared' });
        assert.notEqual(runB.id, runA.id);
        assert.equal(runB.accountId, b);
        assert.equal(await runs.get(a, runB.id), null);
      });

      it("refuses with 'account_limit' at the tier's limit, reporting limit and active", async () => {
        const accountId = await newAccount('free');
        const instanceId = unique('inst');
        await admitCreated(accountId, instanceId);
        const refused = await runs.admit(newRun(accountId, instanceId, { status: 'queued' }), LIMITS, SESSION_MAX);
        assert.deepEqual(refused, { outcome: 'account_limit', limit: 1, active: 1 });
        assert.equal(await runCount(accountId), 1, 'a refused run is not stored');
        assert.equal(await leaseCount({ accountId }), 1);

        const pro = await newAccount('pro');
        for (let i = 0; i < 5; i++) await admitCreated(pro, instanceId);
        assert.deepEqual(await runs.admit(newRun(pro, instanceId), LIMITS, SESSION_MAX), {
          outcome: 'account_limit',
          limit: 5,
          active: 5,
        });
      });

      it('treats a tier missing from the limits map as limit 0', async () => {
        const accountId = await newAccount('legacy');
        const refused = await runs.admit(newRun(accountId, unique('inst')), LIMITS, SESSION_MAX);
        assert.deepEqual(refused, { outcome: 'account_limit', limit: 0, active: 0 });
        assert.equal(await runCount(accountId), 0);
      });

      it("refuses with 'session_limit' in a full session; other sessions and no session still admit", async () => {
        const accountId = await newAccount('pro');
        const instanceId = unique('inst');
        const admit = (sessionId: string | null) => runs.admit(newRun(accountId, instanceId, { sessionId }), LIMITS, 1);
        assertCreated(await admit('s1'));
        assert.deepEqual(await admit('s1'), { outcome: 'session_limit', limit: 1, active: 1 });
        assertCreated(await admit('s2'));
        assertCreated(await admit(null));
        assertCreated(await admit(null));
        assert.equal(await runCount(accountId), 4);
        // Sessions are per account: another account's 's1' is not full.
        const other = await newAccount('pro');
        assertCreated(await runs.admit(newRun(other, instanceId, { sessionId: 's1' }), LIMITS, 1));
      });

      it('checks the account limit before the session limit', async () => {
        const accountId = await newAccount('free');
        const instanceId = unique('inst');
        await admitCreated(accountId, instanceId, { sessionId: 's' });
        const refused = await runs.admit(newRun(accountId, instanceId, { sessionId: 's' }), LIMITS, 1);
        assert.deepEqual(refused, { outcome: 'account_limit', limit: 1, active: 1 });
      });

      it("returns 'no_account' for an unknown account and stores nothing", async () => {
        const ghost = randomUUID();
        const run = newRun(ghost, unique('inst'));
        assert.deepEqual(await runs.admit(run, LIMITS, SESSION_MAX), { outcome: 'no_account' });
        const rows = await db.query(`SELECT 1 FROM runs WHERE id = $1 OR account_id = $2`, [run.id, ghost]);
        assert.equal(rows.length, 0);
      });
    });

    describe('admission under concurrency', () => {
      it('admits exactly one of 40 concurrent runs for a free-tier account', async () => {
        const accountId = await newAccount('free');
        const instanceId = unique('inst');
        const results = await admitAtOnce(40, () => newRun(accountId, instanceId), SESSION_MAX);
        const outcomes = results.map((r) => r.outcome);
        assert.equal(outcomes.filter((o) => o === 'created').length, 1, JSON.stringify(outcomes));
        assert.equal(outcomes.filter((o) => o === 'account_limit').length, 39);
        for (const r of results) if (r.outcome === 'account_limit') assert.deepEqual(r, { outcome: 'account_limit', limit: 1, active: 1 });
        assert.equal(await runCount(accountId), 1);
        assert.equal(await leaseCount({ accountId }), 1);
      });

      it('admits exactly session-max of 40 concurrent runs into one session of a pro account', async () => {
        const accountId = await newAccount('pro');
        const instanceId = unique('inst');
        const results = await admitAtOnce(40, () => newRun(accountId, instanceId, { sessionId: 'chat' }), 1);
        const outcomes = results.map((r) => r.outcome);
        assert.equal(outcomes.filter((o) => o === 'created').length, 1, JSON.stringify(outcomes));
        assert.equal(outcomes.filter((o) => o === 'session_limit').length, 39);
        for (const r of results) if (r.outcome === 'session_limit') assert.deepEqual(r, { outcome: 'session_limit', limit: 1, active: 1 });
        assert.equal(await runCount(accountId), 1);

        // With room for 2 per session and 5 per account, 40 racers spread over 3 sessions get
        // 2 + 2 + 1 = 5 at most, never more than the account's limit.
        const spread = await newAccount('pro');
        const racers = await admitAtOnce(40, (i) => newRun(spread, instanceId, { sessionId: `s${i % 3}` }), 2);
        const created = racers.filter((r) => r.outcome === 'created');
        assert.equal(created.length, 5);
        const perSession = await db.query<{ session_id: string; n: number }>(
          `SELECT session_id, count(*)::int AS n FROM run_leases WHERE account_id = $1 GROUP BY session_id`,
          [spread],
        );
        for (const row of perSession) assert.ok(row.n <= 2, `session ${row.session_id} has ${row.n}`);
      });

      it('gives every concurrent request with one Idempotency-Key the same single run', async () => {
        const accountId = await newAccount('pro');
        const instanceId = unique('inst');
        const results = await admitAtOnce(20, () => newRun(accountId, instanceId, { idempotencyKey: 'once' }), SESSION_MAX);
        assert.equal(results.filter((r) => r.outcome === 'created').length, 1);
        assert.equal(results.filter((r) => r.outcome === 'existing').length, 19);
        const ids = new Set(results.map((r) => ('run' in r ? r.run.id : 'none')));
        assert.equal(ids.size, 1);
        assert.equal(await runCount(accountId), 1);
      });

      it('gives concurrent requests with one Idempotency-Key and two request hashes one run; the other hash is refused', async () => {
        const accountId = await newAccount('pro');
        const instanceId = unique('inst');
        const results = await admitAtOnce(
          20,
          (i) => newRun(accountId, instanceId, { idempotencyKey: 'contested', requestHash: i % 2 === 0 ? 'even' : 'odd' }),
          SESSION_MAX,
        );
        const created = results.filter((r) => r.outcome === 'created');
        assert.equal(created.length, 1);
        const winner = results.indexOf(created[0] as AdmitResult) % 2;
        results.forEach((result, i) => {
          if (result === created[0]) return;
          assert.equal(result.outcome, i % 2 === winner ? 'existing' : 'key_reused', `request ${i}`);
        });
        assert.equal(await runCount(accountId), 1);
      });
    });

    describe('leases', () => {
      for (const final of FINAL_STATUSES) {
        it(`a run reaching '${final}' releases its lease, so the account can admit again`, async () => {
          const accountId = await newAccount('free');
          const instanceId = unique('inst');
          const run = await admitCreated(accountId, instanceId, { sessionId: 's' });
          assert.equal((await runs.admit(newRun(accountId, instanceId), LIMITS, SESSION_MAX)).outcome, 'account_limit');
          assert.ok(await runs.transition(run.id, 'running', final));
          assert.equal(await leaseCount({ runId: run.id }), 0);
          await admitCreated(accountId, instanceId, { sessionId: 's' });
        });
      }

      it('a queued run cancelled before it starts releases its lease', async () => {
        const accountId = await newAccount('free');
        const instanceId = unique('inst');
        const run = await admitCreated(accountId, instanceId, { status: 'queued' });
        assert.ok(await runs.transition(run.id, 'queued', 'cancelled'));
        await admitCreated(accountId, instanceId);
      });

      it('the trigger releases the lease whatever SQL ends the run', async () => {
        const accountId = await newAccount('free');
        const instanceId = unique('inst');
        const run = await admitCreated(accountId, instanceId);
        await db.query(`UPDATE runs SET status = 'failed' WHERE id = $1`, [run.id]);
        assert.equal(await leaseCount({ runId: run.id }), 0);
        await admitCreated(accountId, instanceId);
      });

      it('a queued -> running start keeps the lease', async () => {
        const accountId = await newAccount('free');
        const instanceId = unique('inst');
        const run = await admitCreated(accountId, instanceId, { status: 'queued' });
        assert.ok(await runs.transition(run.id, 'queued', 'running'));
        assert.equal(await leaseCount({ runId: run.id }), 1);
        assert.equal((await runs.admit(newRun(accountId, instanceId), LIMITS, SESSION_MAX)).outcome, 'account_limit');
      });

      it('countLeases counts active runs, accounts and sessions of one instance', async () => {
        const instanceId = unique('inst');
        const elsewhere = unique('inst');
        assert.deepEqual(await runs.countLeases(instanceId), { accounts: 0, sessions: 0, runs: 0 });
        const a = await newAccount('pro');
        const b = await newAccount('pro');
        await admitCreated(a, instanceId, { sessionId: 's1' });
        await admitCreated(a, instanceId, { sessionId: 's1', status: 'queued' });
        await admitCreated(a, instanceId, { sessionId: 's2' });
        await admitCreated(a, instanceId, { sessionId: null });
        await admitCreated(b, instanceId, { sessionId: 's1' });
        const ended = await admitCreated(b, instanceId, { sessionId: 's9' });
        await admitCreated(b, elsewhere, { sessionId: 's3' });
        assert.deepEqual(await runs.countLeases(instanceId), { accounts: 2, sessions: 4, runs: 6 });
        assert.ok(await runs.transition(ended.id, 'running', 'completed'));
        // (a,s1), (a,s2), (b,s1): sessions are counted per account.
        assert.deepEqual(await runs.countLeases(instanceId), { accounts: 2, sessions: 3, runs: 5 });
        assert.deepEqual(await runs.countLeases(elsewhere), { accounts: 1, sessions: 1, runs: 1 });
      });
    });

    describe('RunRepository.transition', () => {
      it('is conditional: a wrong `from` returns null and changes nothing', async () => {
        const run = await runInStatus('queued');
        assert.equal(await runs.transition(run.id, 'running', 'completed'), null);
        assert.deepEqual(await runs.get(run.accountId, run.id), run);
        assert.equal(await leaseCount({ runId: run.id }), 1);
        assert.equal(await runs.transition(randomUUID(), 'running', 'completed'), null, 'unknown run');
      });

      it('lets exactly one of two racing transitions win', async () => {
        const run = await runInStatus('running');
        const [a, b] = await Promise.all([
          runs.transition(run.id, 'running', 'completed', { output: 'done' }),
          runs.transition(run.id, 'running', 'cancelled', { error: { code: 'cancelled', message: 'by user' } }),
        ]);
        assert.equal([a, b].filter((r) => r !== null).length, 1);
        const winner = (a ?? b)!;
        const stored = await runs.get(run.accountId, run.id);
        assert.deepEqual(stored, winner);
        if (winner.status === 'completed') assert.equal(stored?.error, null);
        else assert.equal(stored?.output, undefined);
      });

      it('queued -> running sets started_at; a final status sets finished_at', async () => {
        const queued = await runInStatus('queued');
        const started = await runs.transition(queued.id, 'queued', 'running');
        assert.ok(started);
        assert.equal(started.status, 'running');
        assert.ok(started.startedAt instanceof Date);
        assert.ok(started.startedAt.getTime() >= queued.createdAt.getTime());
        assert.equal(started.finishedAt, null);
        const done = await runs.transition(queued.id, 'running', 'completed');
        assert.ok(done);
        assert.equal(done.status, 'completed');
        assert.deepEqual(done.startedAt, started.startedAt, 'ending does not move started_at');
        assert.ok(done.finishedAt instanceof Date);
        assert.ok(done.finishedAt.getTime() >= started.startedAt.getTime());
        assert.deepEqual(await runs.get(queued.accountId, queued.id), done);
      });

      it('stores the error of a failed run and the output of a completed one', async () => {
        const failing = await runInStatus('running');
        const error = { code: 'agent_error', message: 'the model said "no" \u2014 twice' };
        const failed = await runs.transition(failing.id, 'running', 'failed', { error });
        assert.deepEqual(failed?.error, error);
        assert.equal(failed?.output, undefined);
        assert.deepEqual((await runs.get(failing.accountId, failing.id))?.error, error);

        const succeeding = await runInStatus('running');
        const output = { text: 'done', tokens: [1, 2, 3], nested: { ok: true, none: null } };
        const completed = await runs.transition(succeeding.id, 'running', 'completed', { output });
        assert.deepEqual(completed?.output, output);
        assert.equal(completed?.error, null);
        assert.deepEqual((await runs.get(succeeding.accountId, succeeding.id))?.output, output);

        const stringOutput = await runInStatus('running');
        const withString = await runs.transition(stringOutput.id, 'running', 'completed', { output: 'plain text' });
        assert.equal(withString?.output, 'plain text');
      });

      it('throws before touching the database for a transition the state machine forbids', async () => {
        const queued = await runInStatus('queued');
        await assert.rejects(runs.transition(queued.id, 'queued', 'completed'), /invalid transition queued -> completed/);
        await assert.rejects(runs.transition(queued.id, 'queued', 'timed_out'), /invalid transition/);
        await assert.rejects(runs.transition(queued.id, 'running', 'queued'), /invalid transition/);
        assert.deepEqual(await runs.get(queued.accountId, queued.id), queued);
        const done = await runInStatus('completed');
        for (const to of RUN_STATUSES) {
          await assert.rejects(runs.transition(done.id, 'completed', to), /invalid transition/, `completed -> ${to}`);
        }
        assert.deepEqual(await runs.get(done.accountId, done.id), done);
      });

      it('the database trigger refuses raw SQL that would move a run out of a final status', async () => {
        for (const final of FINAL_STATUSES) {
          const run = await runInStatus(final);
          for (const to of RUN_STATUSES) {
            if (to === final) continue;
            await assert.rejects(db.query(`UPDATE runs SET status = $2 WHERE id = $1`, [run.id, to]), (err: unknown) => {
              assert.equal(sqlState(err), CHECK_VIOLATION, `${final} -> ${to}: ${String(err)}`);
              return true;
            });
          }
          assert.deepEqual(await runs.get(run.accountId, run.id), run, `${final} run unchanged`);
          assert.equal(await leaseCount({ runId: run.id }), 0, 'no lease came back');
        }
        const completed = await runInStatus('completed');
        await assert.rejects(db.query(`UPDATE runs SET status = 'running' WHERE id = '${completed.id}'`), (err: unknown) => {
          assert.equal(sqlState(err), CHECK_VIOLATION);
          return true;
        });
        assert.equal((await runs.get(completed.accountId, completed.id))?.status, 'completed');
      });

      it('the database trigger refuses a skipped step (queued -> completed) and keeps the lease', async () => {
        const queued = await runInStatus('queued');
        await assert.rejects(db.query(`UPDATE runs SET status = 'completed' WHERE id = $1`, [queued.id]), (err: unknown) => {
          assert.equal(sqlState(err), CHECK_VIOLATION);
          return true;
        });
        assert.deepEqual(await runs.get(queued.accountId, queued.id), queued);
        assert.equal(await leaseCount({ runId: queued.id }), 1);
      });
    });

    describe('RunRepository.list and get', () => {
      /** Admits `n` runs and gives them created_at values `spacingMs` apart, oldest first. */
      async function seedRuns(
        accountId: string,
        n: number,
        spacingMs: (i: number) => number,
        overrides: (i: number) => Partial<NewRun> = () => ({}),
      ) {
        const instanceId = unique('inst');
        const base = Date.UTC(2030, 0, 1);
        const seeded: RunRecord[] = [];
        for (let i = 0; i < n; i++) {
          const run = await admitCreated(accountId, instanceId, overrides(i), 100);
          const createdAt = new Date(base + spacingMs(i));
          await db.query(`UPDATE runs SET created_at = $2::timestamptz WHERE id = $1`, [run.id, createdAt.toISOString()]);
          seeded.push({ ...run, createdAt });
        }
        return seeded;
      }

      it('lists newest first', async () => {
        const accountId = await newAccount('big');
        const seeded = await seedRuns(accountId, 5, (i) => i * 1000);
        const listed = await runs.list(accountId, {}, 100, null);
        assert.deepEqual(
          listed.map((r) => r.id),
          seeded.map((r) => r.id).reverse(),
        );
        assert.deepEqual(listed[0], await runs.get(accountId, seeded[4]!.id));
        assert.equal(listed[0]?.createdAt.toISOString(), new Date(Date.UTC(2030, 0, 1) + 4000).toISOString());
      });

      it('filters by status, agent and session, alone and together', async () => {
        const accountId = await newAccount('big');
        const seeded = await seedRuns(
          accountId,
          6,
          (i) => i * 1000,
          (i) => ({ agent: i % 2 === 0 ? 'echo' : 'search', sessionId: i < 3 ? 'alpha' : null, status: i === 5 ? 'queued' : 'running' }),
        );
        assert.ok(await runs.transition(seeded[0]!.id, 'running', 'completed'));
        assert.ok(await runs.transition(seeded[3]!.id, 'running', 'failed'));
        const ids = async (filter: Parameters<RunRepository['list']>[1]) =>
          (await runs.list(accountId, filter, 100, null)).map((r) => r.id);
        const id = (i: number) => seeded[i]!.id;

        assert.deepEqual(await ids({}), [5, 4, 3, 2, 1, 0].map(id));
        assert.deepEqual(await ids({ status: 'running' }), [4, 2, 1].map(id));
        assert.deepEqual(await ids({ status: 'queued' }), [5].map(id));
        assert.deepEqual(await ids({ status: 'completed' }), [0].map(id));
        assert.deepEqual(await ids({ status: 'cancelled' }), []);
        assert.deepEqual(await ids({ agent: 'search' }), [5, 3, 1].map(id));
        assert.deepEqual(await ids({ sessionId: 'alpha' }), [2, 1, 0].map(id));
        assert.deepEqual(await ids({ sessionId: 'nope' }), []);
        assert.deepEqual(await ids({ agent: 'echo', sessionId: 'alpha' }), [2, 0].map(id));
        assert.deepEqual(await ids({ agent: 'echo', status: 'running', sessionId: 'alpha' }), [2].map(id));
      });

      it('pages 7 runs 3 at a time: every run exactly once, in order, across equal timestamps', async () => {
        const accountId = await newAccount('big');
        // Pairs share a created_at, so page boundaries fall inside ties and the id breaks them.
        const seeded = await seedRuns(accountId, 7, (i) => Math.floor(i / 2) * 1000);
        const all = await runs.list(accountId, {}, 100, null);
        assert.equal(all.length, 7);
        assert.deepEqual(new Set(all.map((r) => r.id)), new Set(seeded.map((r) => r.id)));
        for (let i = 1; i < all.length; i++) {
          const prev = all[i - 1]!;
          const cur = all[i]!;
          assert.ok(
            prev.createdAt > cur.createdAt || (prev.createdAt.getTime() === cur.createdAt.getTime() && prev.id > cur.id),
            'ordered by created_at desc, id desc',
          );
        }

        const pages: RunRecord[][] = [];
        let cursor: { createdAt: Date; id: string } | null = null;
        for (let guard = 0; guard < 10; guard++) {
          const page: RunRecord[] = await runs.list(accountId, {}, 3, cursor);
          pages.push(page);
          const last = page.at(-1);
          if (page.length < 3 || last === undefined) break;
          cursor = { createdAt: last.createdAt, id: last.id };
        }
        assert.deepEqual(
          pages.map((p) => p.length),
          [3, 3, 1],
        );
        assert.deepEqual(
          pages.flat().map((r) => r.id),
          all.map((r) => r.id),
        );
      });

      it('pages runs admitted back to back (real timestamps, often equal) without loss or repeats', async () => {
        const accountId = await newAccount('big');
        const instanceId = unique('inst');
        const admitted = new Set<string>();
        for (let i = 0; i < 7; i++) admitted.add((await admitCreated(accountId, instanceId)).id);
        const seen: string[] = [];
        let cursor: { createdAt: Date; id: string } | null = null;
        for (let guard = 0; guard < 10; guard++) {
          const page: RunRecord[] = await runs.list(accountId, {}, 3, cursor);
          seen.push(...page.map((r) => r.id));
          const last = page.at(-1);
          if (page.length < 3 || last === undefined) break;
          cursor = { createdAt: last.createdAt, id: last.id };
        }
        assert.equal(seen.length, 7);
        assert.deepEqual(new Set(seen), admitted);
        assert.deepEqual(
          seen,
          (await runs.list(accountId, {}, 100, null)).map((r) => r.id),
        );
      });

      it('shows an account only its own runs, in list and in get', async () => {
        const mine = await newAccount('big');
        const theirs = await newAccount('big');
        const instanceId = unique('inst');
        const myRuns = [await admitCreated(mine, instanceId, { sessionId: 'shared' }), await admitCreated(mine, instanceId)];
        const theirRun = await admitCreated(theirs, instanceId, { sessionId: 'shared' });
        const listed = await runs.list(mine, {}, 100, null);
        assert.deepEqual(new Set(listed.map((r) => r.id)), new Set(myRuns.map((r) => r.id)));
        assert.deepEqual(
          (await runs.list(mine, { sessionId: 'shared' }, 100, null)).map((r) => r.id),
          [myRuns[0]!.id],
        );
        assert.equal(await runs.get(mine, theirRun.id), null);
        assert.equal((await runs.get(theirs, theirRun.id))?.id, theirRun.id);
        assert.deepEqual(await runs.list(randomUUID(), {}, 100, null), []);
      });
    });

    describe("RunRepository's admin reads (the dashboard)", () => {
      it('newest lists the newest runs of every account, newest first, with the account name and no input', async () => {
        const first = await newAccount('big');
        const second = await newAccount('big');
        const instanceId = unique('inst');
        const seeded: RunRecord[] = [];
        // Later than any other test's runs, so they are the newest of the shared database.
        for (const [i, accountId] of [first, second, first].entries()) {
          const run = await admitCreated(accountId, instanceId, { status: i === 2 ? 'queued' : 'running', sessionId: `s${i}` });
          await db.query(`UPDATE runs SET created_at = $2::timestamptz WHERE id = $1`, [
            run.id,
            new Date(Date.UTC(2031, 0, 1, 0, 0, i)).toISOString(),
          ]);
          seeded.push(run);
        }
        assert.ok(await runs.transition(seeded[0]!.id, 'running', 'failed', { error: { code: 'agent_error', message: 'boom' } }));
        const newest = await runs.newest(3);
        assert.deepEqual(
          newest.map((r) => r.id),
          seeded.map((r) => r.id).reverse(),
        );
        const names = await db.query<{ id: string; name: string }>(`SELECT id, name FROM accounts WHERE id = ANY($1::uuid[])`, [
          `{${first},${second}}`,
        ]);
        const nameOf = new Map(names.map((r) => [String(r.id), String(r.name)]));
        assert.deepEqual(newest[0], {
          id: seeded[2]!.id,
          accountId: first,
          accountName: nameOf.get(first),
          agent: 'echo',
          status: 'queued',
          sessionId: 's2',
          instanceId,
          createdAt: new Date(Date.UTC(2031, 0, 1, 0, 0, 2)),
          startedAt: null,
          finishedAt: null,
          errorCode: null,
        });
        assert.equal(newest[1]?.accountName, nameOf.get(second));
        assert.equal(newest[2]?.status, 'failed');
        assert.equal(newest[2]?.errorCode, 'agent_error');
        assert.ok(newest[2]?.finishedAt instanceof Date);
        assert.equal((await runs.newest(1)).length, 1);
      });

      it('countByStatus counts every active run and the runs that ended within the window', async () => {
        const before = await runs.countByStatus(60_000);
        const queued = await runInStatus('queued');
        await runInStatus('running');
        await runInStatus('completed');
        const old = await runInStatus('cancelled');
        await db.query(`UPDATE runs SET finished_at = now() - interval '2 minutes' WHERE id = $1`, [old.id]);
        const after = await runs.countByStatus(60_000);
        assert.deepEqual(Object.keys(after).sort(), [...RUN_STATUSES].sort());
        assert.equal(after.queued - before.queued, 1);
        assert.equal(after.running - before.running, 1);
        assert.equal(after.completed - before.completed, 1);
        assert.equal(after.cancelled - before.cancelled, 0, 'ended before the window');
        assert.ok(await runs.transition(queued.id, 'queued', 'cancelled'));
        const cancelled = await runs.countByStatus(60_000);
        assert.equal(cancelled.queued - before.queued, 0);
        assert.equal(cancelled.cancelled - before.cancelled, 1);
      });

      it('getAny reads a run whichever account it belongs to; null when unknown', async () => {
        const run = await runInStatus('running');
        assert.deepEqual(await runs.getAny(run.id), await runs.get(run.accountId, run.id));
        assert.equal(await runs.getAny(randomUUID()), null);
      });
    });

    eventArchiveContract({
      db: () => db,
      factory,
      newRunId: async (on = db) => {
        const { account } = await new AccountRepository(on).create(unique('acct'), 'big');
        return assertCreated(await new RunRepository(on).admit(newRun(account.id, unique('inst')), LIMITS, SESSION_MAX)).id;
      },
    });

    describe('webhook deliveries', () => {
      const HOOK = 'https://hooks.example.com/agentd?token=t';
      const deliveriesOf = (ids: readonly string[]) =>
        db.query<{ run_id: string; url: string; state: string; attempts: number }>(
          `SELECT run_id, url, state, attempts FROM webhook_deliveries WHERE run_id = ANY($1::uuid[]) ORDER BY run_id`,
          [`{${ids.join(',')}}`],
        );
      const forget = (ids: readonly string[]) =>
        db.query(`DELETE FROM webhook_deliveries WHERE run_id = ANY($1::uuid[])`, [`{${ids.join(',')}}`]);

      it('admission records the webhook; every way a run ends enqueues exactly one delivery, and a run without one none', async () => {
        const accountId = await newAccount('big');
        const [dead, sweeper, restarted] = [unique('dead'), unique('sweeper'), unique('restarted')];
        const single = await admitCreated(accountId, unique('inst'), { webhookUrl: HOOK });
        assert.deepEqual(single.webhook, { url: HOOK, state: 'pending', attempts: 0, lastStatus: null, lastError: null });
        assert.deepEqual(await runs.get(accountId, single.id), single);
        const batch = (
          await runs.admitMany(
            [0, 1, 2].map(() => encodeRun(newRun(accountId, unique('inst'), { webhookUrl: HOOK }))),
            LIMITS,
            2,
          )
        ).map(assertCreated);
        const orphan = await admitCreated(accountId, dead, { webhookUrl: HOOK });
        const leftover = await admitCreated(accountId, restarted, { webhookUrl: HOOK, status: 'queued' });
        const plain = await admitCreated(accountId, unique('inst'));
        assert.equal(plain.webhook, undefined);
        assert.deepEqual(await deliveriesOf([single.id, ...batch.map((r) => r.id)]), [], 'nothing is due before a run ends');

        // Its own execution (one at a time and batched), a cancel, the sweeper, a restart's leftovers.
        assert.ok(await runs.transition(single.id, 'running', 'completed'));
        const [b0, b1, b2] = batch.map((r) => r.id) as [string, string, string];
        const changed = await runs.transitionMany([
          encodeStatusChange(b0, 'running', 'failed', { error: { code: 'agent_error', message: 'x' } }),
          encodeStatusChange(b1, 'running', 'cancelled'),
          encodeStatusChange(b2, 'running', 'timed_out', { error: { code: 'timeout', message: 'x' } }),
          encodeStatusChange(b2, 'running', 'completed'), // the same run twice in a batch: one applies
          encodeStatusChange(plain.id, 'running', 'completed'),
        ]);
        assert.equal(changed.filter((r) => r !== null).length, 4);
        await db.query(
          `INSERT INTO instances (id, beat_interval_ms, last_beat_at) VALUES ($1, 1000, now() - interval '1 hour'), ($2, 1000, now())`,
          [dead, sweeper],
        );
        assert.deepEqual(
          (await new InstanceRepository(db).sweep(sweeper, ENDINGS.instanceLost.error, 10)).map((r) => r.id),
          [orphan.id],
        );
        assert.equal((await runs.interruptInstance(restarted, ENDINGS.instanceLost.error)).length, 1);
        // Later writes to ended runs change nothing.
        assert.equal(await runs.transition(single.id, 'running', 'failed'), null);
        await db.query(`UPDATE runs SET status = status WHERE id = $1`, [single.id]);

        const ended = [single, ...batch, orphan, leftover].map((r) => r.id);
        const rows = await deliveriesOf([...ended, plain.id]);
        assert.deepEqual(
          rows.map((r) => [r.run_id, r.url, r.state, r.attempts]),
          [...ended].sort().map((id) => [id, HOOK, 'pending', 0]),
        );
        const [delivery] = await db.query<{ n: number }>(
          `SELECT count(DISTINCT id)::int AS n FROM webhook_deliveries WHERE run_id = ANY($1::uuid[])`,
          [`{${ended.join(',')}}`],
        );
        assert.equal(delivery?.n, ended.length, 'each delivery has its own id');
        await forget(ended);
      });

      it('an Idempotency-Key repeat finds the run with its delivery as it stands', async () => {
        const accountId = await newAccount('big');
        const key = unique('key');
        const run = await admitCreated(accountId, unique('inst'), { webhookUrl: HOOK, idempotencyKey: key, requestHash: 'h' });
        assert.ok(await runs.transition(run.id, 'running', 'completed'));
        await db.query(
          `UPDATE webhook_deliveries SET state = 'delivered', attempts = 2, last_status = 200, last_error = NULL WHERE run_id = $1`,
          [run.id],
        );
        const delivered = { url: HOOK, state: 'delivered', attempts: 2, lastStatus: 200, lastError: null };
        const again = await runs.admit(
          newRun(accountId, unique('inst'), { webhookUrl: HOOK, idempotencyKey: key, requestHash: 'h' }),
          LIMITS,
          2,
        );
        assert.equal(again.outcome, 'existing');
        assert.deepEqual('run' in again && again.run.webhook, delivered);
        const found = await runs.findByIdempotencyKey(accountId, key, 'h');
        assert.deepEqual(found?.outcome === 'existing' && found.run.webhook, delivered);
        await forget([run.id]);
      });

      it('hands each due delivery to one claimer, hides it for its lease, and records only the current attempt', async () => {
        const accountId = await newAccount('big');
        const ids: string[] = [];
        for (let i = 0; i < 12; i += 1) {
          const run = await admitCreated(accountId, unique('inst'), { webhookUrl: `${HOOK}&n=${i}` });
          assert.ok(await runs.transition(run.id, 'running', 'completed', { output: { n: i } }));
          ids.push(run.id);
        }
        const [ca, cb] = [unique('claimer'), unique('claimer')];
        const other = fx.openAnother?.();
        const [a, b] = [new WebhookRepository(db), new WebhookRepository(other ?? db)];
        let heldByA: string[];
        try {
          const [first, second] = await Promise.all([a.claim(ca, 8, 60_000), b.claim(cb, 8, 60_000)]);
          const claimed = [...first, ...second];
          assert.deepEqual(claimed.map((d) => d.run.id).sort(), [...ids].sort(), 'every delivery claimed once');
          for (const d of claimed) {
            assert.equal(d.attempt, 1);
            assert.equal(d.run.status, 'completed');
            assert.deepEqual(d.run.output, { n: Number(new URL(d.url).searchParams.get('n')) });
            assert.ok(d.ageMs >= 0 && d.ageMs < 60_000, String(d.ageMs));
          }
          assert.deepEqual(await a.claim(ca, 100, 60_000), [], 'leased');
          heldByA = first.map((d) => d.run.id);
        } finally {
          await other?.close();
        }
        const repo = new WebhookRepository(db);
        const [one, two] = ids as [string, string];
        // A retry due at once; then a lease of 0 ms (as if it ran out): the next claim makes
        // attempt 3, and attempt 2's outcome is not recorded.
        assert.ok(await repo.record(one, 1, { state: 'pending', lastStatus: 500, lastError: 'the receiver answered 500', retryInMs: 0 }));
        assert.deepEqual(
          (await repo.claim(ca, 100, 0)).map((d) => [d.run.id, d.attempt]),
          [[one, 2]],
        );
        assert.deepEqual(
          (await repo.claim(cb, 100, 60_000)).map((d) => [d.run.id, d.attempt]),
          [[one, 3]],
        );
        assert.equal(await repo.record(one, 2, { state: 'delivered', lastStatus: 200, lastError: null }), false);
        assert.ok(await repo.record(one, 3, { state: 'delivered', lastStatus: 204, lastError: null }));
        assert.equal(
          await repo.record(one, 3, { state: 'failed', lastStatus: null, lastError: 'late' }),
          false,
          'a delivery over stays over',
        );
        assert.ok(await repo.record(two, 1, { state: 'failed', lastStatus: 410, lastError: 'the receiver answered 410' }));
        assert.deepEqual((await runs.get(accountId, one))?.webhook, {
          url: `${HOOK}&n=0`,
          state: 'delivered',
          attempts: 3,
          lastStatus: 204,
          lastError: null,
        });
        assert.deepEqual((await runs.list(accountId, {}, 20, null)).find((r) => r.id === two)?.webhook, {
          url: `${HOOK}&n=1`,
          state: 'failed',
          attempts: 1,
          lastStatus: 410,
          lastError: 'the receiver answered 410',
        });
        // A claimer that restarts frees what it still holds, and only that.
        const stillA = heldByA.filter((id) => id !== one && id !== two).sort();
        assert.equal(await repo.releaseClaims(ca), stillA.length);
        assert.deepEqual((await repo.claim(unique('claimer'), 100, 60_000)).map((d) => d.run.id).sort(), stillA);
        await forget(ids);
      });
    });

    describe('RunRepository.interruptInstance', () => {
      it("ends that instance's queued and running runs as interrupted and leaves the rest alone", async () => {
        const dead = unique('dead');
        const alive = unique('alive');
        const accountId = await newAccount('pro');
        const queued = await admitCreated(accountId, dead, { status: 'queued', sessionId: 's' });
        const running = await admitCreated(accountId, dead, { sessionId: 's' });
        const finished = await admitCreated(accountId, dead);
        const completed = await runs.transition(finished.id, 'running', 'completed', { output: 'ok' });
        assert.ok(completed);
        const survivor = await admitCreated(accountId, alive);
        assert.equal((await runs.admit(newRun(accountId, dead, { sessionId: 's' }), LIMITS, 2)).outcome, 'session_limit');

        const error = { code: 'instance_restarted', message: 'the instance that ran this run restarted' };
        assert.equal((await runs.interruptInstance(dead, error)).length, 2);

        for (const before of [queued, running]) {
          const after = await runs.get(accountId, before.id);
          assert.ok(after);
          assert.equal(after.status, 'interrupted');
          assert.deepEqual(after.error, error);
          assert.ok(after.finishedAt instanceof Date);
          assert.deepEqual(after.startedAt, before.startedAt);
        }
        assert.deepEqual(await runs.get(accountId, finished.id), completed, 'a finished run is untouched');
        assert.deepEqual(await runs.get(accountId, survivor.id), survivor, "another instance's run is untouched");

        assert.deepEqual(await runs.countLeases(dead), { accounts: 0, sessions: 0, runs: 0 });
        assert.deepEqual(await runs.countLeases(alive), { accounts: 1, sessions: 0, runs: 1 });
        // The session's leases were released: it admits again.
        await admitCreated(accountId, alive, { sessionId: 's' });
        // Nothing left to interrupt.
        assert.equal((await runs.interruptInstance(dead, error)).length, 0);
      });
    });
  });
}

describe('storage', () => {
  // Prepared statements (the default) and the two-round-trip path DB_PREPARED_STATEMENTS=false keeps for poolers.
  for (const preparedStatements of [true, false]) {
    storageContract(preparedStatements ? 'postgres' : 'postgres without prepared statements', (options) =>
      postgresFixture({ max: 10, acquireTimeoutMs: 30_000, applicationName: 'agentd-storage-test', preparedStatements, ...options }),
    );
  }

  storageContract('pglite (in-memory)', pgliteFixture);
});
