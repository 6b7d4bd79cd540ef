/**
 * The narrow database seam. Everything above the storage layer talks to a `Database`; two adapters
 * implement it: real Postgres (`postgres-database.ts`) and embedded PGlite (`pglite-database.ts`).
 *
 * Conventions for callers:
 * - Parameters are `$1..$n`. JSON values are passed as `JSON.stringify`'d strings with an explicit
 *   `::jsonb` cast in the SQL text (`insert ... values ($1::jsonb)`); jsonb columns come back parsed.
 * - timestamptz columns come back as `Date`, uuid columns as strings, int8/bigint and numeric as strings.
 * - Inside `transaction(fn)`, use only the `tx` handed to `fn`; calling the outer `Database` from
 *   inside can deadlock when the pool (or PGlite's single connection) is exhausted.
 * - A statement the database refuses rejects with a `DatabaseError` (SQLSTATE in `code`); an
 *   unreachable database with `DependencyUnavailableError`. Neither holds the statement's text
 *   or parameters, so either may be logged.
 */
export type Row = Record<string, unknown>;

export interface Queryable {
  /** Runs one statement with $1..$n parameters (JSON values are passed as JSON.stringify'd strings with an explicit ::jsonb cast in SQL by callers). */
  query<T extends Row = Row>(text: string, params?: readonly unknown[]): Promise<T[]>;
}

export interface PoolStats {
  readonly max: number;
  readonly inUse: number;
  readonly idle: number;
  readonly waiting: number;
}

export interface Database extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** Runs several statements without parameters (migrations). */
  exec(sqlText: string): Promise<void>;
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  stats(): PoolStats;
  /** Idempotent: returns the same promise when called twice. */
  close(): Promise<void>;
}
