/**
 * `Database` over embedded PGlite (single connection, WASM Postgres). `dataDir` undefined means
 * in-memory; otherwise the directory is created (recursively) and the data persists there.
 * PGlite serialises statements internally, so `stats().max` is 1. Its errors carry the
 * statement's text and parameters; they leave as a `DatabaseError`, which holds neither.
 */
import { mkdir } from 'node:fs/promises';
import { PGlite, type PGliteOptions } from '@electric-sql/pglite';
import { EMBEDDED, embeddedAsset } from '../lib/embedded-assets.js';
import type { Database, PoolStats, Queryable, Row } from './database.js';
import { toDatabaseError } from './database-error.js';

export interface PgliteDatabaseOptions {
  dataDir?: string;
}

/** PGlite's json/jsonb serializer already passes strings through unchanged; undefined becomes NULL. */
function toParams(params: readonly unknown[] | undefined): unknown[] {
  return params ? params.map((p) => (p === undefined ? null : p)) : [];
}

type WasmModule = NonNullable<PGliteOptions['pgliteWasmModule']>;

/** `WebAssembly.compile`, which Node has though its type declarations here do not. */
function compileWasm(bytes: ArrayBuffer): Promise<WasmModule> {
  const { WebAssembly } = globalThis as unknown as { WebAssembly: { compile(bytes: ArrayBuffer): Promise<WasmModule> } };
  return WebAssembly.compile(bytes);
}

/**
 * In the single executable, PGlite's WebAssembly and data come from the executable itself (it
 * would look for them beside its own module, which is not on disk); elsewhere PGlite finds them.
 */
async function embeddedPgliteFiles(): Promise<Pick<PGliteOptions, 'pgliteWasmModule' | 'initdbWasmModule' | 'fsBundle'>> {
  const wasm = embeddedAsset(EMBEDDED.pgliteWasm);
  const initdb = embeddedAsset(EMBEDDED.initdbWasm);
  const data = embeddedAsset(EMBEDDED.pgliteData);
  if (wasm === undefined || initdb === undefined || data === undefined) return {};
  const [pgliteWasmModule, initdbWasmModule] = await Promise.all([compileWasm(wasm), compileWasm(initdb)]);
  return { pgliteWasmModule, initdbWasmModule, fsBundle: new Blob([data]) };
}

export async function createPgliteDatabase(opts: PgliteDatabaseOptions): Promise<Database> {
  const files = await embeddedPgliteFiles();
  if (opts.dataDir !== undefined) await mkdir(opts.dataDir, { recursive: true });
  const pg = await PGlite.create({ ...files, ...(opts.dataDir === undefined ? {} : { dataDir: opts.dataDir }) });

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

  /** One statement; its failure as a DatabaseError. */
  async function run<R extends Row>(on: Pick<PGlite, 'query'>, text: string, params: readonly unknown[] | undefined): Promise<R[]> {
    try {
      return (await on.query<R>(text, toParams(params))).rows;
    } catch (error) {
      throw toDatabaseError(error);
    }
  }

  const db: Database = {
    kind: 'pglite',

    query<T extends Row = Row>(text: string, params?: readonly unknown[]): Promise<T[]> {
      return track(() => run<T>(pg, text, params));
    },

    exec(sqlText: string): Promise<void> {
      return track(async () => {
        try {
          await pg.exec(sqlText);
        } catch (error) {
          throw toDatabaseError(error);
        }
      });
    },

    transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      return track(async () => {
        // Errors thrown by `fn` itself (not by the database) must pass through untouched.
        let fnFailure: { error: unknown } | undefined;
        try {
          return await pg.transaction(async (pgTx) => {
            const tx: Queryable = {
              query: <R extends Row = Row>(text: string, params?: readonly unknown[]) => run<R>(pgTx, text, params),
            };
            try {
              return await fn(tx);
            } catch (error) {
              fnFailure = { error };
              throw error;
            }
          });
        } catch (error) {
          if (fnFailure !== undefined && error === fnFailure.error) throw error;
          throw toDatabaseError(error);
        }
      });
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
