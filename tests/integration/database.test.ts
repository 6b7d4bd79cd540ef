import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { inspect } from 'node:util';
import { DependencyUnavailableError } from '../../src/domain/index.js';
import type { Database } from '../../src/db/database.js';
import { createPgliteDatabase } from '../../src/db/pglite-database.js';
import { createPostgresDatabase, probeServerLimits } from '../../src/db/postgres-database.js';
import { type DatabaseFixture, pgliteFixture, postgresFixture } from '../helpers/databases.js';
import { randomTag } from '../helpers/ids.js';
import { createTestDatabase } from '../helpers/test-database.js';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Fails if `marker` shows anywhere in the error or its causes: fields (hidden ones too), message, stack, JSON. */
function assertHolds(error: unknown, marker: string): void {
  for (let cause = error, level = 0; cause !== undefined && cause !== null && level < 10; level += 1) {
    const views = [inspect(cause, { showHidden: true, depth: null }), JSON.stringify(cause), String(cause)];
    if (cause instanceof Error) views.push(cause.message, String(cause.stack));
    for (const view of views) assert.ok(!view.includes(marker), `the error holds the statement's data: ${view}`);
    cause = (cause as { cause?: unknown }).cause;
  }
}

/** The contract every `Database` adapter must satisfy. */
function databaseContract(name: string, factory: () => Promise<DatabaseFixture>): void {
  describe(`Database contract: ${name}`, () => {
    let fx: DatabaseFixture;
    let db: Database;

    before(async () => {
      fx = await factory();
      db = fx.db;
      await db.exec(`
        create table items (
          id uuid primary key default gen_random_uuid(),
          name text not null unique,
          payload jsonb,
          created_at timestamptz not null default now()
        );
        create table counters (name text primary key, n integer not null);
        insert into counters (name, n) values ('a', 0);
      `);
    });

    after(async () => {
      await fx?.teardown();
    });

    it('runs a query with parameters', async () => {
      const rows = await db.query<{ sum: number; label: string; flag: boolean }>(
        'select $1::int + $2::int as sum, $3::text as label, $4::boolean as flag',
        [2, 3, 'hi', true],
      );
      assert.deepEqual(rows, [{ sum: 5, label: 'hi', flag: true }]);
    });

    it('returns an empty array when no rows match', async () => {
      const rows = await db.query('select * from items where name = $1', ['does-not-exist']);
      assert.deepEqual(rows, []);
    });

    it('round-trips jsonb values passed as JSON strings with ::jsonb casts', async () => {
      const values: unknown[] = [{ a: 1, nested: { b: [1, 'two', null] } }, [1, 2, { c: 'd' }], null, 'a string', 42, true];
      for (const [i, value] of values.entries()) {
        const [inserted] = await db.query<{ payload: unknown }>(
          'insert into items (name, payload) values ($1, $2::jsonb) returning payload',
          [`json-${i}`, JSON.stringify(value)],
        );
        assert.deepEqual(inserted?.payload, value, `insert returning for ${JSON.stringify(value)}`);
        const [read] = await db.query<{ payload: unknown; kind: string }>(
          'select payload, jsonb_typeof(payload) as kind from items where name = $1',
          [`json-${i}`],
        );
        assert.deepEqual(read?.payload, value, `select for ${JSON.stringify(value)}`);
      }
      // JSON null is a jsonb value, distinct from SQL NULL.
      const [kinds] = await db.query<{ kind: string | null }>("select jsonb_typeof(payload) as kind from items where name = 'json-2'");
      assert.equal(kinds?.kind, 'null');
      const [str] = await db.query<{ kind: string | null }>("select jsonb_typeof(payload) as kind from items where name = 'json-3'");
      assert.equal(str?.kind, 'string');
      // SQL NULL parameter stays SQL NULL.
      const [sqlNull] = await db.query<{ payload: unknown; isnull: boolean }>('select $1::jsonb as payload, $1::jsonb is null as isnull', [
        null,
      ]);
      assert.equal(sqlNull?.payload, null);
      assert.equal(sqlNull?.isnull, true);
    });

    it('returns timestamptz as Date and uuid as string', async () => {
      const before = Date.now();
      const [row] = await db.query<{ id: unknown; created_at: unknown; ts: unknown }>(
        'insert into items (name) values ($1) returning id, created_at, $2::timestamptz as ts',
        ['ts-row', '2024-01-02T03:04:05.678Z'],
      );
      assert.ok(row);
      assert.equal(typeof row.id, 'string');
      assert.match(row.id as string, UUID_RE);
      assert.ok(row.created_at instanceof Date, 'created_at is a Date');
      assert.ok(Math.abs(row.created_at.getTime() - before) < 60_000);
      assert.ok(row.ts instanceof Date);
      assert.equal(row.ts.toISOString(), '2024-01-02T03:04:05.678Z');
      const [byId] = await db.query<{ name: string }>('select name from items where id = $1::uuid', [row.id]);
      assert.equal(byId?.name, 'ts-row');
    });

    it('passes SQL errors through with their SQLSTATE code', async () => {
      await db.query('insert into items (name) values ($1)', ['dup']);
      await assert.rejects(db.query('insert into items (name) values ($1)', ['dup']), (err: unknown) => {
        assert.ok(!(err instanceof DependencyUnavailableError));
        assert.equal((err as { code?: unknown }).code, '23505');
        return true;
      });
      await assert.rejects(db.query('select * from no_such_table'), (err: unknown) => {
        assert.equal((err as { code?: unknown }).code, '42P01');
        return true;
      });
    });

    it("keeps the statement's text and parameters out of its errors, with the SQLSTATE kept", async () => {
      const marker = `marker-${randomTag()}`;
      await db.exec(`create table guarded (name text primary key, payload jsonb check (payload is null or not payload ? 'refuse'))`);
      await db.query('insert into guarded (name) values ($1)', [marker]);
      const failures: Array<[string, () => Promise<unknown>, string | undefined]> = [
        ['23505', () => db.query('insert into guarded (name) values ($1)', [marker]), 'guarded_pkey'],
        [
          '23514',
          () => db.query('insert into guarded (name, payload) values ($1, $2::jsonb)', [`${marker}-2`, JSON.stringify({ refuse: marker })]),
          'guarded_payload_check',
        ],
        ['22P02', () => db.query('select $1::int', [marker]), undefined],
        ['22P02', () => db.query('select $1::jsonb', [`"\\ud800 ${marker}"`]), undefined],
        ['22P02', () => db.query('select $1::uuid', [`"${marker}" '${marker}'`]), undefined],
        ['22012', () => db.query(`select 1 / 0 from guarded where name <> '${marker}'`), undefined],
        ['23505', () => db.transaction((tx) => tx.query('insert into guarded (name) values ($1)', [marker])), 'guarded_pkey'],
        ['23505', () => db.exec(`insert into guarded (name) values ('${marker}')`), 'guarded_pkey'],
      ];
      for (const [code, fail, constraint] of failures) {
        await assert.rejects(fail(), (err: unknown) => {
          assertHolds(err, marker);
          assert.equal((err as { code?: unknown }).code, code);
          if (constraint !== undefined) assert.equal((err as { constraint?: unknown }).constraint, constraint);
          return true;
        });
      }
    });

    it('commits a transaction', async () => {
      const result = await db.transaction(async (tx) => {
        await tx.query("update counters set n = n + 1 where name = 'a'");
        const [row] = await tx.query<{ n: number }>("select n from counters where name = 'a'");
        return row?.n;
      });
      assert.equal(result, 1);
      const [row] = await db.query<{ n: number }>("select n from counters where name = 'a'");
      assert.equal(row?.n, 1);
    });

    it('rolls a transaction back when the callback throws, and propagates the error', async () => {
      class Boom extends Error {}
      const boom = new Boom('boom');
      await assert.rejects(
        db.transaction(async (tx) => {
          await tx.query("update counters set n = 100 where name = 'a'");
          await tx.query('insert into items (name) values ($1)', ['rolled-back']);
          throw boom;
        }),
        (err: unknown) => err === boom,
      );
      const [row] = await db.query<{ n: number }>("select n from counters where name = 'a'");
      assert.equal(row?.n, 1);
      const rows = await db.query("select 1 from items where name = 'rolled-back'");
      assert.equal(rows.length, 0);
    });

    it('rolls back when a statement inside the transaction fails', async () => {
      await assert.rejects(
        db.transaction(async (tx) => {
          await tx.query("update counters set n = 200 where name = 'a'");
          await tx.query('insert into items (name) values ($1)', ['dup']);
        }),
        (err: unknown) => (err as { code?: unknown }).code === '23505',
      );
      const [row] = await db.query<{ n: number }>("select n from counters where name = 'a'");
      assert.equal(row?.n, 1);
    });

    it('exec runs several statements', async () => {
      await db.exec(`
        create table exec_a (x int);
        insert into exec_a values (1), (2);
        create table exec_b as select x * 10 as y from exec_a;
      `);
      const rows = await db.query<{ total: number }>('select sum(y)::int as total from exec_b');
      assert.deepEqual(rows, [{ total: 30 }]);
    });

    it('supports plpgsql functions and pg_advisory_xact_lock', async () => {
      await db.exec(`
        create function bump(counter text, delta int) returns int
        language plpgsql as $$
        declare result int;
        begin
          update counters set n = n + delta where name = counter returning n into result;
          return result;
        end;
        $$;
      `);
      const [r1] = await db.query<{ n: number }>('select bump($1, $2) as n', ['a', 5]);
      assert.equal(r1?.n, 6);
      const got = await db.transaction(async (tx) => {
        await tx.query('select pg_advisory_xact_lock($1::bigint)', [42]);
        const [held] = await tx.query<{ n: number }>(
          "select count(*)::int as n from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()",
        );
        const [r] = await tx.query<{ n: number }>('select bump($1, $2) as n', ['a', 1]);
        return { held: held?.n, n: r?.n };
      });
      assert.deepEqual(got, { held: 1, n: 7 });
      // The xact lock was released at commit.
      const [after] = await db.query<{ n: number }>(
        "select count(*)::int as n from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()",
      );
      assert.equal(after?.n, 0);
    });

    it('stats() returns to inUse 0 after work', async () => {
      const s0 = db.stats();
      assert.ok(s0.max >= 1);
      await Promise.all([
        db.query('select 1'),
        db.query('select 2'),
        db.transaction(async (tx) => tx.query('select 3')),
        db.exec('select 4; select 5'),
      ]);
      const s = db.stats();
      assert.equal(s.inUse, 0);
      assert.equal(s.waiting, 0);
      assert.equal(s.idle, s.max);
    });

    it('close() is idempotent', async () => {
      const other = await factory();
      const p1 = other.db.close();
      const p2 = other.db.close();
      assert.equal(p1, p2);
      await p1;
      await other.db.close();
      await other.teardown();
    });
  });
}

describe('database adapters', () => {
  databaseContract('postgres', () => postgresFixture({ max: 4, acquireTimeoutMs: 5_000 }));
  databaseContract('pglite (in-memory)', () => pgliteFixture());

  describe('pglite only', () => {
    it('persists to a dataDir it creates (recursively)', async () => {
      const root = await mkdtemp(join(tmpdir(), 'agentd-pglite-'));
      const dataDir = join(root, 'nested', 'pgdata');
      try {
        const db1 = await createPgliteDatabase({ dataDir });
        await db1.exec("create table kept (v text); insert into kept values ('survives');");
        await db1.close();
        const db2 = await createPgliteDatabase({ dataDir });
        try {
          assert.deepEqual(await db2.query('select v from kept'), [{ v: 'survives' }]);
        } finally {
          await db2.close();
        }
      } finally {
        await rm(root, { recursive: true, force: true });
      }
    });
  });

  describe('postgres only', () => {
    let testDb: Awaited<ReturnType<typeof createTestDatabase>>;

    before(async () => {
      testDb = await createTestDatabase();
    });

    after(async () => {
      await testDb?.drop();
    });

    it('rejects with DependencyUnavailableError when the server is unreachable', async () => {
      const db = createPostgresDatabase({
        url: 'postgres://postgres@127.0.0.1:1/postgres',
        max: 2,
        acquireTimeoutMs: 200,
        applicationName: 'agentd-test-unreachable',
      });
      const started = Date.now();
      try {
        const results = await Promise.allSettled(Array.from({ length: 5 }, () => db.query('select 1')));
        for (const r of results) {
          assert.equal(r.status, 'rejected');
          const err = r.reason as unknown;
          assert.ok(err instanceof DependencyUnavailableError, `got ${String(err)}`);
          assert.equal(err.code, 'dependency_unavailable');
          assert.equal(err.status, 503);
        }
        await assert.rejects(
          db.transaction(async (tx) => tx.query('select 1')),
          DependencyUnavailableError,
        );
        await assert.rejects(db.exec('select 1'), DependencyUnavailableError);
        assert.ok(Date.now() - started < 4_000, `took ${Date.now() - started} ms`);
        assert.equal(db.stats().inUse, 0);
        assert.equal(db.stats().waiting, 0);
      } finally {
        await db.close();
      }
    });

    it("keeps the statement's parameters out of a connection failure and its cause", async () => {
      const db = createPostgresDatabase({
        url: 'postgres://postgres@127.0.0.1:1/postgres',
        max: 1,
        acquireTimeoutMs: 2_000,
        applicationName: 'agentd-test-unreachable',
      });
      const marker = `marker-${randomTag()}`;
      try {
        await assert.rejects(db.query('select $1::text', [marker]), (err: unknown) => {
          assert.ok(err instanceof DependencyUnavailableError);
          assert.ok(err.cause !== undefined, 'the connection error is kept as the cause');
          assertHolds(err, marker);
          return true;
        });
      } finally {
        await db.close();
      }
    });

    it('rejects a caller that waits longer than acquireTimeoutMs for its turn', async () => {
      const db = createPostgresDatabase({ url: testDb.url, max: 1, acquireTimeoutMs: 50, applicationName: 'agentd-test-gate' });
      try {
        const slow = db.query('select pg_sleep(0.4)');
        await new Promise((r) => setTimeout(r, 10));
        assert.equal(db.stats().inUse, 1);
        await assert.rejects(db.query('select 1'), (err: unknown) => {
          assert.ok(err instanceof DependencyUnavailableError);
          assert.equal(err.code, 'dependency_unavailable');
          return true;
        });
        assert.equal(db.stats().waiting, 0);
        await slow;
        assert.deepEqual(await db.query<{ n: number }>('select 1 as n'), [{ n: 1 }]);
      } finally {
        await db.close();
      }
    });

    it('never has more than max statements in flight, and all of them finish', async () => {
      const appName = 'agentd-test-bounded';
      const db = createPostgresDatabase({ url: testDb.url, max: 2, acquireTimeoutMs: 10_000, applicationName: appName });
      try {
        let maxInUse = 0;
        let maxWaiting = 0;
        let maxBackends = 0;
        const sample = () => {
          const s = db.stats();
          assert.equal(s.max, 2);
          assert.equal(s.inUse + s.idle, 2);
          maxInUse = Math.max(maxInUse, s.inUse);
          maxWaiting = Math.max(maxWaiting, s.waiting);
        };
        const timer = setInterval(sample, 2);
        const queries = Array.from({ length: 10 }, (_, i) => db.query<{ i: number }>('select pg_sleep(0.05), $1::int as i', [i]));
        sample();
        // Watch the server side too: connections opened by this pool.
        const admin = createPostgresDatabase({ url: testDb.url, max: 1, acquireTimeoutMs: 5_000, applicationName: 'agentd-test-observer' });
        const observe = (async () => {
          for (let k = 0; k < 10; k++) {
            const [row] = await admin.query<{ n: number }>('select count(*)::int as n from pg_stat_activity where application_name = $1', [
              appName,
            ]);
            maxBackends = Math.max(maxBackends, row?.n ?? 0);
            await new Promise((r) => setTimeout(r, 20));
          }
        })();
        const results = await Promise.all(queries);
        await observe;
        clearInterval(timer);
        sample();
        await admin.close();
        assert.deepEqual(
          results.map((r) => r[0]?.i),
          Array.from({ length: 10 }, (_, i) => i),
        );
        assert.ok(maxInUse <= 2, `inUse reached ${maxInUse}`);
        assert.equal(maxInUse, 2);
        assert.ok(maxWaiting >= 1, 'some callers queued');
        assert.ok(maxBackends <= 2, `server saw ${maxBackends} connections`);
        assert.equal(db.stats().inUse, 0);
        assert.equal(db.stats().waiting, 0);
      } finally {
        await db.close();
      }
    });

    it('probeServerLimits reads max_connections and reserved connections', async () => {
      const limits = await probeServerLimits(testDb.url);
      assert.ok(Number.isInteger(limits.maxConnections) && limits.maxConnections > 0);
      assert.ok(Number.isInteger(limits.reservedConnections) && limits.reservedConnections >= 0);
      assert.ok(limits.reservedConnections < limits.maxConnections);
    });

    it('probeServerLimits rejects with DependencyUnavailableError when unreachable', async () => {
      await assert.rejects(probeServerLimits('postgres://postgres@127.0.0.1:1/postgres'), DependencyUnavailableError);
    });
  });
});
