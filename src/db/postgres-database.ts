/**
 * `Database` over the `postgres` package (porsager/postgres).
 *
 * The package queues statements without bound while the server is unreachable, so this adapter puts
 * a FIFO gate in front of it: at most `max` statements/transactions in flight; a caller that waits
 * longer than `acquireTimeoutMs` for its turn gets `DependencyUnavailableError('database')`.
 * Connection-level failures become `DependencyUnavailableError('database', cause)`; SQL errors
 * (unique violations, syntax errors, ...) become a `DatabaseError` with their SQLSTATE in `.code`.
 * Neither carries the statement's text or parameters (see `DatabaseError`).
 */
import postgres from 'postgres';
import { DependencyUnavailableError } from '../domain/index.js';
import { BoundedGate } from '../concurrency/bounded-gate.js';
import type { Database, PoolStats, Queryable, Row } from './database.js';
import { toDatabaseError } from './database-error.js';

export interface PostgresDatabaseOptions {
  url: string;
  /** Connections in the pool, and statements/transactions in flight at once. */
  max: number;
  /** How long a caller may wait for its turn before getting DependencyUnavailableError. */
  acquireTimeoutMs: number;
  applicationName: string;
  /**
   * Prepare statements that have parameters once per connection. Without it the package asks
   * the server for the parameter types before every such statement: two round trips, not one.
   * Off behind a pooler that cannot keep prepared statements (PgBouncer in transaction mode
   * before 1.21). Default true.
   */
  preparedStatements?: boolean;
}

const CONNECT_TIMEOUT_S = 5;
const IDLE_TIMEOUT_S = 30;
const END_TIMEOUT_S = 5;

/**
 * Seconds to wait before reconnecting after a failed connection attempt. The package default grows to
 * 20 s, which a statement already holding a gate slot would sit through before failing, and which
 * delays recovery when the server returns; cap it at 2 s (with jitter).
 */
function reconnectBackoffS(retries: number): number {
  return (0.5 + Math.random() / 2) * Math.min(0.05 * 2 ** retries, 2);
}

/** Node/system and postgres.js error codes that mean "the server cannot be reached / the connection broke". */
const CONNECTION_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'CONNECT_TIMEOUT',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
]);

/**
 * jsonb/json parameters: callers pass JSON.stringify'd strings, which must go to the server as-is
 * (the package default would JSON.stringify them a second time). Non-strings are still stringified.
 */
const jsonPassthrough = {
  to: 3802,
  from: [114, 3802],
  serialize: (x: unknown): string => (typeof x === 'string' ? x : JSON.stringify(x)),
  parse: (x: string): unknown => JSON.parse(x),
};

type Sql = postgres.Sql<Record<string, unknown>>;
type TxSql = postgres.TransactionSql<Record<string, unknown>>;
type UnsafeParams = Parameters<Sql['unsafe']>[1];

function errorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/** True when `err` says the database is unreachable or the connection failed, rather than that the SQL failed. */
export function isConnectionError(err: unknown): boolean {
  if (err instanceof DependencyUnavailableError) return true;
  const code = errorCode(err);
  if (code !== undefined) {
    if (CONNECTION_ERROR_CODES.has(code)) return true;
    if (/^[0-9A-Z]{5}$/.test(code) && (code.startsWith('08') || code.startsWith('53') || code.startsWith('57P'))) {
      return true;
    }
  }
  // Node's happy-eyeballs connect can reject with an AggregateError of per-address failures.
  if (err instanceof AggregateError) return err.errors.length > 0 && err.errors.every(isConnectionError);
  return false;
}

/** The driver's error as one that holds no statement text or parameters. */
function mapError(err: unknown): Error {
  if (err instanceof DependencyUnavailableError) return err;
  return isConnectionError(err) ? new DependencyUnavailableError('database', toDatabaseError(err)) : toDatabaseError(err);
}

function toParams(params: readonly unknown[] | undefined): UnsafeParams {
  return (params ? [...params] : []) as unknown as UnsafeParams;
}

async function runOn<T extends Row>(
  sql: Sql | TxSql,
  text: string,
  params: readonly unknown[] | undefined,
  prepare: boolean,
): Promise<T[]> {
  try {
    const rows = await sql.unsafe(text, toParams(params), { prepare: prepare && params !== undefined && params.length > 0 });
    // A plain array (not the package's Result subclass), like the PGlite adapter returns.
    return Array.from(rows as Iterable<T>);
  } catch (err) {
    throw mapError(err);
  }
}

function connect(url: string, max: number, applicationName: string): Sql {
  return postgres(url, {
    max,
    connect_timeout: CONNECT_TIMEOUT_S,
    idle_timeout: IDLE_TIMEOUT_S,
    backoff: reconnectBackoffS,
    connection: { application_name: applicationName },
    onnotice: () => {},
    // undefined parameters are sent as NULL (the PGlite adapter behaves the same way).
    transform: { undefined: null },
    types: { jsonPassthrough },
  }) as unknown as Sql;
}

export function createPostgresDatabase(opts: PostgresDatabaseOptions): Database {
  const sql = connect(opts.url, opts.max, opts.applicationName);
  const prepared = opts.preparedStatements ?? true;
  const gate = new BoundedGate(opts.max, opts.acquireTimeoutMs, () => new DependencyUnavailableError('database'));
  let closing: Promise<void> | undefined;

  const db: Database = {
    kind: 'postgres',

    query<T extends Row = Row>(text: string, params?: readonly unknown[]): Promise<T[]> {
      return gate.run(() => runOn<T>(sql, text, params, prepared));
    },

    exec(sqlText: string): Promise<void> {
      // No parameters: the package uses the simple query protocol, which accepts several statements.
      return gate.run(async () => {
        await runOn(sql, sqlText, undefined, false);
      });
    },

    transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      return gate.run(async () => {
        // Errors thrown by `fn` itself (not by the database) must pass through untouched.
        let fnFailure: { error: unknown } | undefined;
        try {
          const result = await sql.begin(async (txSql) => {
            const tx: Queryable = {
              query: <R extends Row = Row>(text: string, params?: readonly unknown[]) => runOn<R>(txSql, text, params, prepared),
            };
            try {
              return await fn(tx);
            } catch (error) {
              fnFailure = { error };
              throw error;
            }
          });
          return result as T;
        } catch (err) {
          if (fnFailure !== undefined && err === fnFailure.error) throw err;
          throw mapError(err);
        }
      });
    },

    stats(): PoolStats {
      const inUse = gate.inUse;
      return { max: gate.max, inUse, idle: gate.max - inUse, waiting: gate.waiting };
    },

    close(): Promise<void> {
      closing ??= (async () => {
        gate.close(() => new DependencyUnavailableError('database'));
        await sql.end({ timeout: END_TIMEOUT_S });
      })();
      return closing;
    },
  };
  return db;
}

/**
 * Reads the server's connection limits over one short-lived connection (always closed).
 * `reservedConnections` is superuser_reserved_connections plus reserved_connections where the
 * server has that setting (PostgreSQL 16+).
 */
export async function probeServerLimits(url: string): Promise<{ maxConnections: number; reservedConnections: number }> {
  const sql = postgres(url, {
    max: 1,
    connect_timeout: CONNECT_TIMEOUT_S,
    idle_timeout: 1,
    onnotice: () => {},
    connection: { application_name: 'agentd-probe' },
  });
  try {
    const rows = await sql.unsafe<{ name: string; setting: string }[]>(
      `select name, setting from pg_settings
        where name in ('max_connections', 'superuser_reserved_connections', 'reserved_connections')`,
    );
    const settings = new Map(rows.map((r) => [r.name, Number.parseInt(r.setting, 10)]));
    const maxConnections = settings.get('max_connections');
    if (maxConnections === undefined || !Number.isFinite(maxConnections)) {
      throw new Error('probeServerLimits: the server did not report max_connections');
    }
    const superuserReserved = settings.get('superuser_reserved_connections') ?? 0;
    const reserved = settings.get('reserved_connections') ?? 0;
    return {
      maxConnections,
      reservedConnections: (Number.isFinite(superuserReserved) ? superuserReserved : 0) + (Number.isFinite(reserved) ? reserved : 0),
    };
  } catch (err) {
    throw mapError(err);
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
}
