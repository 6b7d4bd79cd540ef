import postgres from 'postgres';

/**
 * What the bench does to its own database between passes, so every pass starts from the same
 * state and Postgres's background work does not land at a random moment inside a measured window:
 * autovacuum is off on the bench's tables (a VACUUM ANALYZE between passes does its work instead),
 * and a CHECKPOINT right before each pass restarts the checkpoint clock and WAL distance, so the
 * next checkpoint falls at the same point of every pass (or after it). Only the bench's own
 * database is touched; CHECKPOINT is server-wide by nature (it flushes dirty pages, nothing else).
 */
export interface PinReport {
  readonly truncatedTables: number;
  readonly vacuumMs: number;
  readonly checkpointMs: number;
}

/** Tables whose rows the migrations write (the applied migrations; the run state machine's allowed transitions). */
const KEPT = new Set(['agentd_migrations', 'run_transitions']);

async function withSql<T>(url: string, work: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(url, { max: 1, onnotice: () => undefined });
  try {
    return await work(sql);
  } finally {
    await sql.end({ timeout: 2 });
  }
}

async function publicTables(sql: postgres.Sql): Promise<string[]> {
  const rows = await sql<Array<{ name: string }>>`SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename`;
  return rows.map((r) => r.name);
}

const quoted = (name: string) => `"${name.replace(/"/g, '""')}"`;

function assertBenchDatabase(url: string): void {
  if (!new URL(url).pathname.startsWith('/agentd_bench_')) throw new Error(`refusing to pin a database outside the bench: ${url}`);
}

/** Autovacuum off on every table of the bench's database `url` (idempotent; once its server created the tables). */
export async function autovacuumOff(url: string): Promise<void> {
  assertBenchDatabase(url);
  await withSql(url, async (sql) => {
    for (const table of await publicTables(sql)) {
      await sql.unsafe(`ALTER TABLE ${quoted(table)} SET (autovacuum_enabled = off, toast.autovacuum_enabled = off)`);
    }
  });
}

/**
 * Pins the database `url` (one of the bench's own) before a pass: with `truncate`, empties every
 * table but those the migrations fill (only while no server of the bench uses it: the pass then starts on
 * the database a fresh run's first pass sees); then VACUUM ANALYZE and CHECKPOINT.
 */
export async function pinDatabase(url: string, options: { truncate: boolean }): Promise<PinReport> {
  assertBenchDatabase(url);
  return withSql(url, async (sql) => {
    const data = (await publicTables(sql)).filter((t) => !KEPT.has(t));
    if (options.truncate && data.length > 0) await sql.unsafe(`TRUNCATE ${data.map(quoted).join(', ')} CASCADE`);
    const vacuumStart = Date.now();
    await sql.unsafe('VACUUM ANALYZE');
    const checkpointStart = Date.now();
    await sql.unsafe('CHECKPOINT');
    return {
      truncatedTables: options.truncate ? data.length : 0,
      vacuumMs: checkpointStart - vacuumStart,
      checkpointMs: Date.now() - checkpointStart,
    };
  });
}
