/**
 * The sweep of dead instances' runs, on the real database: two sweepers racing over the same
 * orphans end each run once with one `end`; a sweeper whose own beat is stale sweeps nothing;
 * and an instance cut off from the database for longer than 3 beats has its run swept, then
 * stops that run's agent when it is back, without a second owner or a second `end`.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { TierLimits } from '../../src/config/tier-limits.js';
import { AccountRepository } from '../../src/db/account-repository.js';
import type { Database } from '../../src/db/database.js';
import { EventArchiveRepository } from '../../src/db/event-archive-repository.js';
import { InstanceRepository } from '../../src/db/instance-repository.js';
import { RunRepository } from '../../src/db/run-repository.js';
import { ENDINGS, type Logger } from '../../src/domain/index.js';
import { createLogger } from '../../src/observability/logger.js';
import { InstanceHeartbeat } from '../../src/runtime/instance-heartbeat.js';
import { RunEndRecovery } from '../../src/runtime/run-end-recovery.js';
import { EventArchiver } from '../../src/streaming/event-archiver.js';
import { EventLog } from '../../src/streaming/event-log.js';
import { MemoryEventStore } from '../../src/streaming/memory/memory-event-store.js';
import { startAgentd, type TestAgentd } from '../helpers/agentd.js';
import { pgliteFixture, postgresFixture, type DatabaseFixture, type PostgresFixture } from '../helpers/databases.js';
import { unique } from '../helpers/ids.js';
import { cleanupPrefix, redisUrl, uniquePrefix } from '../helpers/redis.js';
import { readSse } from '../helpers/sse.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { waitFor } from '../helpers/wait-for.js';

const LIMITS: TierLimits = new Map([['big', 10_000]]);
const logger: Logger = createLogger('error');

/** One instance's view of the database: its heartbeat, with an event log over an in-process store. */
function sweeperOn(db: Database, instanceId: string) {
  const archive = new EventArchiveRepository(db);
  const archiver = new EventArchiver({ repository: archive, intervalMs: 60_000, onError: () => undefined });
  const store = new MemoryEventStore({ ttlSeconds: 60, onError: () => undefined });
  const eventLog = new EventLog({ store, archiver, archive, onError: () => undefined });
  let swept = 0;
  const heartbeat = new InstanceHeartbeat({
    instanceId,
    intervalMs: 60_000,
    instances: new InstanceRepository(db),
    runs: { localRunIds: () => [], endedElsewhere: () => undefined },
    ends: new RunEndRecovery({ runs: new RunRepository(db), eventLog, logger }),
    observer: { beat: () => undefined, swept: (n) => (swept += n) },
    logger,
  });
  return { heartbeat, swept: () => swept, close: () => Promise.all([archiver.close(), store.close()]) };
}

/** `count` running runs of `instanceId`, which last beat an hour ago. */
async function orphans(db: Database, instanceId: string, count: number): Promise<string[]> {
  const { account } = await new AccountRepository(db).create('orphans', 'big');
  const runs = new RunRepository(db);
  const ids: string[] = [];
  for (let i = 0; i < count; i += 1) {
    const id = randomUUID();
    const admitted = await runs.admit(
      {
        id,
        accountId: account.id,
        agent: 'simulate',
        status: 'running',
        sessionId: null,
        input: null,
        model: null,
        metadata: null,
        timeoutMs: 60_000,
        idempotencyKey: null,
        requestHash: null,
        instanceId,
      },
      LIMITS,
      1,
    );
    assert.equal(admitted.outcome, 'created');
    ids.push(id);
  }
  await db.query(`INSERT INTO instances (id, beat_interval_ms, last_beat_at) VALUES ($1, 1000, now() - interval '1 hour')`, [instanceId]);
  return ids;
}

async function endsPerRun(db: Database, ids: readonly string[]): Promise<number[]> {
  const rows = await db.query<{ n: string }>(
    // The archive's `end` events: the last of each chunk that ends its run (two chunks may end with the same one).
    `SELECT count(DISTINCT (e.last_ms, e.last_seq)) AS n FROM unnest($1::uuid[]) AS r(id)
     LEFT JOIN run_event_chunks e ON e.run_id = r.id AND e.ended GROUP BY r.id`,
    [`{${ids.join(',')}}`],
  );
  return rows.map((r) => Number(r.n));
}

for (const [name, open] of [
  ['postgres', () => postgresFixture({ migrate: true, max: 8 })],
  ['pglite', () => pgliteFixture({ migrate: true })],
] as const) {
  describe(`the sweep on ${name}`, () => {
    let fx: DatabaseFixture;
    before(async () => {
      fx = await open();
    });
    after(async () => {
      await fx?.teardown();
    });

    it('two sweepers racing over 200 orphaned runs end each once, with exactly one end event', async () => {
      const dead = unique('dead');
      const ids = await orphans(fx.db, dead, 200);
      const second = fx.openAnother?.() ?? fx.db;
      const [a, b] = [sweeperOn(fx.db, unique('live-a')), sweeperOn(second, unique('live-b'))];
      try {
        await Promise.all([a.heartbeat.tick(), b.heartbeat.tick()]); // both register, and race
        await Promise.all([a.heartbeat.tick(), b.heartbeat.tick()]);
        assert.equal(a.swept() + b.swept(), 200, `swept ${a.swept()} + ${b.swept()}`);
        const statuses = await fx.db.query<{ status: string; code: string; n: string }>(
          `SELECT status, error ->> 'code' AS code, count(*) AS n FROM runs WHERE instance_id = $1 GROUP BY 1, 2`,
          [dead],
        );
        assert.deepEqual(
          statuses.map((r) => ({ ...r, n: Number(r.n) })),
          [{ status: 'interrupted', code: 'instance_lost', n: 200 }],
        );
        assert.deepEqual(
          await endsPerRun(fx.db, ids),
          ids.map(() => 1),
        );
        const leases = await fx.db.query<{ n: string }>(`SELECT count(*) AS n FROM run_leases WHERE instance_id = $1`, [dead]);
        assert.equal(Number(leases[0]?.n), 0);
      } finally {
        await Promise.all([a.close(), b.close()]);
        if (second !== fx.db) await second.close();
      }
    });

    it('a sweeper whose own beat is stale sweeps nothing', async () => {
      const dead = unique('dead');
      const ids = await orphans(fx.db, dead, 3);
      const instances = new InstanceRepository(fx.db);
      const stale = unique('stale');
      await fx.db.query(`INSERT INTO instances (id, beat_interval_ms, last_beat_at) VALUES ($1, 1000, now() - interval '10 seconds')`, [
        stale,
      ]);
      assert.deepEqual(await instances.sweep(stale, ENDINGS.instanceLost.error, 100), []);
      assert.deepEqual(await instances.sweep(unique('never-beat'), ENDINGS.instanceLost.error, 100), []);
      await instances.beat(stale, 1000, []);
      assert.equal((await instances.sweep(stale, ENDINGS.instanceLost.error, 100)).length, ids.length);
    });
  });
}

describe('an instance cut off from the database for longer than 3 beats', () => {
  let fx: PostgresFixture;
  let proxy: TcpProxy;
  let cutOff: TestAgentd;
  let live: TestAgentd;
  const prefix = uniquePrefix();

  before(async () => {
    fx = await postgresFixture({ migrate: true });
    const direct = new URL(fx.url);
    proxy = await startTcpProxy(Number(direct.port || 5432), direct.hostname);
    const viaProxy = new URL(fx.url);
    viaProxy.host = proxy.address;
    const shared = { REDIS_URL: redisUrl(), REDIS_KEY_PREFIX: prefix, INSTANCE_HEARTBEAT_MS: '300' };
    cutOff = await startAgentd('pglite', { ...shared, DATABASE_URL: viaProxy.toString(), DB_ACQUIRE_TIMEOUT_MS: '500' });
    live = await startAgentd('pglite', { ...shared, DATABASE_URL: fx.url });
  });
  after(async () => {
    proxy?.restore();
    await cutOff?.close();
    await live?.close();
    await proxy?.close();
    await fx?.teardown();
    await cleanupPrefix(prefix);
  });

  it('has its run swept by the live one, then stops that run itself once back: one owner, one end', async () => {
    const { apiKey } = await live.createAccount('free');
    const created = await cutOff.as(apiKey, 'POST', '/v1/runs', {
      body: { agent: 'simulate', input: { events: 100_000, interval_ms: 20 } },
    });
    assert.equal(created.status, 202, created.text);
    const id = created.body.id as string;
    let events = 0;
    const listening = readSse(`${live.url}/v1/runs/${id}/events`, { token: apiKey, onEvent: () => (events += 1) });
    await waitFor(() => events > 3, { what: 'the listener on the live instance to get events' });

    proxy.cut();
    const { events: seen } = await listening;
    assert.equal(seen.at(-1)?.event, 'end');
    assert.deepEqual(seen.at(-1)?.data, { status: 'interrupted', error: ENDINGS.instanceLost.error });

    proxy.restore();
    // Back on the database, the cut-off instance learns its run ended elsewhere and stops it.
    const idle = await cutOff.waitForIdle();
    assert.equal(idle.runs.in_use, 0);
    const run = await live.waitForEnd(apiKey, id);
    assert.equal(run.status, 'interrupted');
    assert.equal(run.error.code, 'instance_lost');
    const replay = await readSse(`${live.url}/v1/runs/${id}/events`, { token: apiKey });
    assert.equal(replay.events.filter((e) => e.event === 'end').length, 1);
    assert.deepEqual(replay.events.at(-1), seen.at(-1));
    await live.waitForIdle();
  });
});
