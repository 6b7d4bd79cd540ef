/**
 * One test database per fixture, on each adapter: a throw-away database on the real Postgres,
 * or an in-memory PGlite. Contract suites take either through the same `DatabaseFixture`.
 */
import type { Database } from '../../src/db/database.js';
import { migrate as applyMigrations } from '../../src/db/migrations.js';
import { createPgliteDatabase } from '../../src/db/pglite-database.js';
import { createPostgresDatabase } from '../../src/db/postgres-database.js';
import { createTestDatabase } from './test-database.js';

export interface DatabaseFixture {
  readonly db: Database;
  /** Another pool on the same database (a second instance), where the adapter can have one; the caller closes it. */
  readonly openAnother?: () => Database;
  /** Closes `db` and removes the database. */
  teardown(): Promise<void>;
}

export interface PostgresFixture extends DatabaseFixture {
  readonly openAnother: () => Database;
  /** The test database's URL. */
  readonly url: string;
  /** A pool with the fixture's options at `url` (default: the test database; e.g. through a proxy); the caller closes it. */
  open(url?: string): Database;
}

export interface FixtureOptions {
  /** Apply the migrations before handing the database over; default false. */
  readonly migrate?: boolean;
}

export interface PostgresFixtureOptions extends FixtureOptions {
  /** Pool size; default 4. */
  readonly max?: number;
  /** How long a statement waits for its turn, in ms; default 5000. */
  readonly acquireTimeoutMs?: number;
  /** Default true (DB_PREPARED_STATEMENTS). */
  readonly preparedStatements?: boolean;
  /** Shown in pg_stat_activity; default `agentd-test`. */
  readonly applicationName?: string;
}

/** A fresh database of its own on the real Postgres (see `createTestDatabase`). */
export async function postgresFixture(options: PostgresFixtureOptions = {}): Promise<PostgresFixture> {
  const { max = 4, acquireTimeoutMs = 5_000, preparedStatements, applicationName = 'agentd-test' } = options;
  const testDb = await createTestDatabase();
  const open = (url = testDb.url): Database => createPostgresDatabase({ url, max, acquireTimeoutMs, applicationName, preparedStatements });
  const db = open();
  const fixture: PostgresFixture = {
    db,
    url: testDb.url,
    open,
    openAnother: () => open(),
    async teardown() {
      await db.close();
      await testDb.drop();
    },
  };
  return prepared(fixture, options);
}

/** A fresh in-memory PGlite. */
export async function pgliteFixture(options: FixtureOptions = {}): Promise<DatabaseFixture> {
  const db = await createPgliteDatabase({});
  return prepared({ db, teardown: () => db.close() }, options);
}

async function prepared<F extends DatabaseFixture>(fixture: F, { migrate = false }: FixtureOptions): Promise<F> {
  if (!migrate) return fixture;
  try {
    await applyMigrations(fixture.db);
  } catch (error) {
    await fixture.teardown();
    throw error;
  }
  return fixture;
}
