/**
 * The retention cleanup on Postgres and PGlite: finished runs older than RUN_RETENTION_DAYS go
 * with every archived event and their webhook deliveries, in small statements; newer and unfinished runs stay;
 * Idempotency-Keys past 24 h are cleared; instances long dead and holding nothing go.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { TierLimits } from '../../src/config/tier-limits.js';
import { AccountRepository } from '../../src/db/account-repository.js';
import type { Database } from '../../src/db/database.js';
import { EventArchiveRepository } from '../../src/db/event-archive-repository.js';
import { chunkEvents } from '../../src/db/event-chunk.js';
import { RetentionRepository } from '../../src/db/retention-repository.js';
import { RunRepository } from '../../src/db/run-repository.js';
import { type ActiveStatus, eventBytes } from '../../src/domain/index.js';
import { pgliteFixture, postgresFixture, type DatabaseFixture } from '../helpers/databases.js';
import { eventChain } from '../helpers/events.js';
import { unique } from '../helpers/ids.js';

const LIMITS: TierLimits = new Map([['big', 10_000]]);

for (const [name, open] of [
  ['postgres', () => postgresFixture({ migrate: true })],
  ['pglite', () => pgliteFixture({ migrate: true })],
] as const) {
  describe(`retention on ${name}`, () => {
    let fx: DatabaseFixture;
    let db: Database;
    let runs: RunRepository;
    let accountId: string;
    const instanceId = unique('retention');

    before(async () => {
      fx = await open();
      db = fx.db;
      runs = new RunRepository(db);
      accountId = (await new AccountRepository(db).create('old', 'big')).account.id;
    });
    after(async () => {
      await fx?.teardown();
    });

    const run = async (status: ActiveStatus, idempotencyKey: string | null = null, webhookUrl: string | null = null): Promise<string> => {
      const id = randomUUID();
      const admitted = await runs.admit(
        {
          id,
          accountId,
          agent: 'echo',
          status,
          sessionId: null,
          input: null,
          model: null,
          metadata: null,
          timeoutMs: 1_000,
          idempotencyKey,
          requestHash: null,
          instanceId,
          webhookUrl,
        },
        LIMITS,
        1,
      );
      assert.equal(admitted.outcome, 'created');
      return id;
    };
    const finish = async (id: string, daysAgo: number) => {
      await runs.transition(id, 'running', 'completed');
      await db.query(
        `UPDATE runs SET finished_at = now() - $2 * interval '1 day', created_at = now() - $2 * interval '1 day' WHERE id = $1`,
        [id, daysAgo],
      );
    };
    const count = async (sql: string, params: unknown[]) => Number((await db.query<{ n: string }>(sql, params))[0]?.n);

    it('deletes old finished runs with all their events and deliveries, keeps the rest, clears old keys and forgets long-dead instances', async () => {
      const old = await run('running', null, 'https://hooks.example.com/old');
      await finish(old, 40);
      const recentHook = await run('running', null, 'https://hooks.example.com/recent');
      await finish(recentHook, 2);
      // 1,500 chunks of 8 events: more than one statement's worth of chunks.
      const events = eventChain(Array.from({ length: 12_000 }, (_, i) => i % 10)).map((event) => ({ runId: old, event }));
      const chunks = chunkEvents(events, 8 * eventBytes(events[0]!.event));
      assert.equal(chunks.length, 1_500);
      await new EventArchiveRepository(db).insertChunks(chunks);
      const recent = await run('running', unique('key'));
      await finish(recent, 2);
      const unfinished = await run('running', unique('key'));
      await db.query(`UPDATE runs SET created_at = now() - interval '40 days' WHERE id = $1`, [unfinished]);
      const fresh = await run('running', unique('key'));
      const [gone, busy] = [unique('gone'), unique('busy')];
      await db.query(
        `INSERT INTO instances (id, beat_interval_ms, last_beat_at) VALUES ($1, 1000, now() - interval '40 days'), ($2, 1000, now() - interval '40 days')`,
        [gone, busy],
      );
      await db.query(`UPDATE runs SET instance_id = $2 WHERE id = $1`, [unfinished, busy]);

      const pass = await new RetentionRepository(db).purge(30, 10);
      assert.deepEqual(pass, { runs: 1, events: 12_000, webhooks: 1, idempotencyKeys: 2, instances: 1 });
      assert.equal(await count(`SELECT count(*) AS n FROM runs WHERE id = $1`, [old]), 0);
      assert.equal(await count(`SELECT count(*) AS n FROM run_event_chunks WHERE run_id = $1`, [old]), 0);
      assert.equal(await count(`SELECT count(*) AS n FROM webhook_deliveries WHERE run_id = $1`, [old]), 0);
      assert.equal(
        await count(`SELECT count(*) AS n FROM webhook_deliveries WHERE run_id = $1`, [recentHook]),
        1,
        'a recent run keeps its delivery',
      );
      assert.equal(await count(`SELECT count(*) AS n FROM runs WHERE id = ANY($1::uuid[])`, [`{${recent},${unfinished},${fresh}}`]), 3);
      const keys = await db.query<{ id: string; key: string | null }>(
        `SELECT id, idempotency_key AS key FROM runs WHERE id = ANY($1::uuid[])`,
        [`{${recent},${unfinished},${fresh}}`],
      );
      assert.deepEqual(
        keys.filter((k) => k.key !== null).map((k) => k.id),
        [fresh],
      );
      assert.deepEqual(
        (await db.query(`SELECT id FROM instances WHERE id = ANY($1::text[]) ORDER BY id`, [`{${gone},${busy}}`])).map((r) => r.id),
        [busy],
      );
      assert.deepEqual(await new RetentionRepository(db).purge(30, 10), {
        runs: 0,
        events: 0,
        webhooks: 0,
        idempotencyKeys: 0,
        instances: 0,
      });
    });
  });
}
