/**
 * Creates a throw-away database on the real Postgres for one test file.
 * Admin URL: TEST_DATABASE_URL, else DATABASE_URL, else postgres://postgres@127.0.0.1:5432/postgres.
 * Tests never skip: if Postgres is unreachable this throws with instructions to start it.
 */
import postgres from 'postgres';
import { randomTag } from './ids.js';

const DEFAULT_ADMIN_URL = 'postgres://postgres@127.0.0.1:5432/postgres';

export function adminDatabaseUrl(): string {
  return process.env.TEST_DATABASE_URL || process.env.DATABASE_URL || DEFAULT_ADMIN_URL;
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<unparseable database URL>';
  }
}

function adminConnection(url: string): postgres.Sql {
  return postgres(url, { max: 1, connect_timeout: 5, idle_timeout: 1, onnotice: () => {} });
}

export async function createTestDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const adminUrl = adminDatabaseUrl();
  const name = `agentd_test_${randomTag(6)}`;

  const admin = adminConnection(adminUrl);
  try {
    await admin.unsafe(`create database "${name}"`);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    const isSqlError = typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && !code.startsWith('08') && !code.startsWith('57P');
    if (isSqlError) throw err;
    throw new Error(
      `Postgres is not reachable at ${redact(adminUrl)} (${err instanceof Error ? err.message : String(err)}). ` +
        'Integration tests need a real Postgres; start it with ' +
        '`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` ' +
        '(or run the whole suite through `.ci/run`, which starts it), ' +
        'or point TEST_DATABASE_URL at a reachable server.',
      { cause: err },
    );
  } finally {
    await admin.end({ timeout: 1 }).catch(() => {});
  }

  const url = new URL(adminUrl);
  url.pathname = `/${name}`;

  let dropping: Promise<void> | undefined;
  return {
    url: url.toString(),
    drop(): Promise<void> {
      dropping ??= (async () => {
        const sql = adminConnection(adminUrl);
        try {
          await sql.unsafe('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()', [name]);
          await sql.unsafe(`drop database if exists "${name}" with (force)`);
        } finally {
          await sql.end({ timeout: 1 }).catch(() => {});
        }
      })();
      return dropping;
    },
  };
}
