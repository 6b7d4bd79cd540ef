import { join } from 'node:path';
import { sizeDbPool, type Limit } from '../concurrency/sizing.js';
import type { Config } from '../config/config.js';
import type { Database } from '../db/database.js';
import { createPgliteDatabase } from '../db/pglite-database.js';
import { createPostgresDatabase, probeServerLimits } from '../db/postgres-database.js';

export interface DatabaseSizing {
  readonly instanceId: string;
  readonly runSlots: number;
  /** Processes sharing this instance's budget (WORKERS). */
  readonly processes: number;
}

/** The embedded PGlite database, or real Postgres with a pool budgeted against the server. */
export async function openDatabase(settings: Config['db'], sizing: DatabaseSizing): Promise<{ db: Database; pool: Limit }> {
  if (settings.url === undefined) {
    const db = await createPgliteDatabase({ dataDir: join(settings.dataDir, 'pglite') });
    return { db, pool: { value: 1, source: 'auto' } };
  }
  let pool: Limit;
  if (settings.maxConnections === undefined) {
    const server = await probeServerLimits(settings.url);
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
    url: settings.url,
    max: pool.value,
    acquireTimeoutMs: settings.acquireTimeoutMs,
    applicationName: `agentd:${sizing.instanceId}`,
    preparedStatements: settings.preparedStatements,
  });
  return { db, pool };
}
