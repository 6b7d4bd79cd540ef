import { join } from 'node:path';
import { sizeDbPool, type Limit } from '../concurrency/sizing.js';
import type { Config } from '../config/config.js';
import type { Database } from '../db/database.js';
import { DependencyUnavailableError } from '../domain/index.js';
import { hostAndPort } from '../lib/redact-url.js';
import { createPgliteDatabase } from '../db/pglite-database.js';
import { createPostgresDatabase, probeServerLimits } from '../db/postgres-database.js';

export interface DatabaseSizing {
  readonly instanceId: string;
  readonly runSlots: number;
  /** Processes sharing this instance's budget (WORKERS). */
  readonly processes: number;
}

const POSTGRES_PORT = 5432;

/**
 * The embedded PGlite database, or real Postgres with a pool budgeted against the server. A
 * Postgres server that cannot be reached (or refuses to let agentd in) fails start-up with an
 * error naming its host and port (never the URL's password), caused by what refused it.
 */
export async function openDatabase(settings: Config['db'], sizing: DatabaseSizing): Promise<{ db: Database; pool: Limit }> {
  if (settings.url === undefined) {
    const db = await createPgliteDatabase({ dataDir: join(settings.dataDir, 'pglite') });
    return { db, pool: { value: 1, source: 'auto' } };
  }
  const url = settings.url;
  let opened: { db: Database; pool: Limit } | undefined;
  try {
    opened = await openPostgres(url, settings, sizing);
    await opened.db.query('SELECT 1');
    return opened;
  } catch (error) {
    await opened?.db.close();
    // The 503 error the HTTP API would answer with says nothing here; what it wraps does.
    const cause = error instanceof DependencyUnavailableError && error.cause !== undefined ? error.cause : error;
    throw new Error(`cannot connect to the database at ${hostAndPort(url, POSTGRES_PORT)}`, { cause });
  }
}

async function openPostgres(url: string, settings: Config['db'], sizing: DatabaseSizing): Promise<{ db: Database; pool: Limit }> {
  let pool: Limit;
  if (settings.maxConnections === undefined) {
    const server = await probeServerLimits(url);
    pool = sizeDbPool({
      runSlots: sizing.runSlots,
      serverMaxConnections: server.maxConnections,
      reservedConnections: server.reservedConnections,
      instances: settings.instances,
      processes: sizing.processes,
    });
  } else {
    pool = { value: settings.maxConnections, source: 'env' };
  }
  const db = createPostgresDatabase({
    url,
    max: pool.value,
    acquireTimeoutMs: settings.acquireTimeoutMs,
    applicationName: `agentd:${sizing.instanceId}`,
    preparedStatements: settings.preparedStatements,
  });
  return { db, pool };
}
