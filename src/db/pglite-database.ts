/**
 * `Database` over embedded PGlite (single connection, WASM Postgres). `dataDir` undefined means
 * in-memory; otherwise the directory is created (recursively) and the data persists there.
 * PGlite serialises statements internally, so `stats().max` is 1.
 */
import { mkdir } from 'node:fs/promises';
import { PGlite } from '@electric-sql/pglite';
import type { Database, PoolStats, Queryable, Row } from './database.js';

export interface PgliteDatabaseOptions {
  dataDir?: string;
}

/** PGlite's json/jsonb serializer already passes strings through unchanged; undefined becomes NULL. */
function toParams(params: readonly unknown[] | undefined): unknown[] {
  return params ? params.map((p) => (p === undefined ? null : p)) : [];
}

export async function createPgliteDatabase(opts: PgliteDatabaseOptions): Promise<Database> {
  let pg: PGlite;
  if (opts.dataDir === undefined) {
    pg = await PGlite.create();
  } else {
    await mkdir(opts.dataDir, { recursive: true });
    pg = await PGlite.create({ dataDir: opts.dataDir });
  }

  let inFlight = 0;
  let closing: Promise<void> | undefined;

  async function track<T>(fn: () => Promise<T>): Promise<T> {
    inFlight++;
    try {
      return await fn();
    } finally {
      inFlight--;
    }
  }

  const db: Database = {
    kind: 'pglite',

    query<T extends Row = Row>(text: string, params?: readonly unknown[]): Promise<T[]> {
      return track(async () => (await pg.query<T>(text, toParams(params))).rows);
    },

    exec(sqlText: string): Promise<void> {
      return track(async () => {
        await pg.exec(sqlText);
      });
    },

    transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      return track(() =>
        pg.transaction(async (pgTx) => {
          const tx: Queryable = {
            query: async <R extends Row = Row>(text: string, params?: readonly unknown[]) =>
              (await pgTx.query<R>(text, toParams(params))).rows,
          };
          return fn(tx);
        }),
      );
    },

    stats(): PoolStats {
      const inUse = Math.min(inFlight, 1);
      return { max: 1, inUse, idle: 1 - inUse, waiting: Math.max(0, inFlight - 1) };
    },

    close(): Promise<void> {
      closing ??= (async () => {
        if (!pg.closed) await pg.close();
      })();
      return closing;
    },
  };
  return db;
}
