/**
 * The event archive's part of the storage contract (storage.test.ts runs it on each adapter):
 * EventArchiveRepository stores runs' events as chunks and reads them back exactly, once each,
 * in pages cut as the event stores cut theirs.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Database } from '../../src/db/database.js';
import { type ArchivedEvent, EventArchiveRepository } from '../../src/db/event-archive-repository.js';
import { chunkEvents } from '../../src/db/event-chunk.js';
import { EventChunkTextError } from '../../src/db/event-chunk-text.js';
import { migrate } from '../../src/db/migrations.js';
import { compareEventIds, DependencyUnavailableError, type EventId, eventBytes, eventJson, type RunEvent } from '../../src/domain/index.js';
import { sseFrame } from '../../src/http/sse/sse-frame.js';
import { EventArchiver } from '../../src/streaming/event-archiver.js';
import { EventLog } from '../../src/streaming/event-log.js';
import { MemoryEventStore } from '../../src/streaming/memory/memory-event-store.js';
import type { DatabaseFixture, FixtureOptions } from './databases.js';
import { eventChain } from './events.js';

export interface EventArchiveContractDeps {
  /** The file's migrated database. */
  readonly db: () => Database;
  /** A fresh database on the same adapter. */
  readonly factory: (options?: FixtureOptions) => Promise<DatabaseFixture>;
  /** The id of a new running run (the archive's rows belong to a run). */
  readonly newRunId: (db?: Database) => Promise<string>;
}

const of = (runId: string, events: readonly RunEvent[]): ArchivedEvent[] => events.map((event) => ({ runId, event }));

/** What `read` must give: each event once, by id, strictly after `after`, at most `limit`, up to the one whose bytes reach `maxBytes`. */
function expectedPage(all: readonly RunEvent[], after: EventId | null, limit: number, maxBytes: number): RunEvent[] {
  const page: RunEvent[] = [];
  let bytes = 0;
  for (const event of all) {
    if (after !== null && compareEventIds(event.id, after) <= 0) continue;
    if (page.length >= limit || bytes >= maxBytes) break;
    page.push(event);
    bytes += eventBytes(event);
  }
  return page;
}

/** Every page read from every id (and the start), for limits and byte bounds around the events' sizes, as `expectedPage` says. */
async function assertEveryPage(archive: EventArchiveRepository, runId: string, all: readonly RunEvent[]): Promise<void> {
  const size = eventBytes(all[0]!);
  const byteBounds = [1, size, size + 1, 2 * size, 3 * size - 1, 5 * size, Number.MAX_SAFE_INTEGER];
  for (const after of [null, ...all.map((event) => event.id)]) {
    for (const limit of [1, 2, 3, 4, 7, 100]) {
      for (const maxBytes of byteBounds) {
        const read = await archive.read(runId, after, limit, maxBytes);
        assert.deepEqual(
          read,
          expectedPage(all, after, limit, maxBytes),
          `after ${JSON.stringify(after)}, limit ${limit}, ${maxBytes} bytes`,
        );
      }
    }
  }
}

export function eventArchiveContract(deps: EventArchiveContractDeps): void {
  describe('EventArchiveRepository', () => {
    const chunkRows = async (runId: string) =>
      (
        await deps
          .db()
          .query<{ n: number; bytes: number }>(
            `SELECT event_count AS n, event_bytes AS bytes FROM run_event_chunks WHERE run_id = $1 ORDER BY first_ms, first_seq`,
            [runId],
          )
      ).map((row) => ({ n: Number(row.n), bytes: Number(row.bytes) }));

    it("reads back each event's id, chain, type and JSON text exactly as written, after an id and up to a limit", async () => {
      const archive = new EventArchiveRepository(deps.db());
      const runId = await deps.newRunId();
      const values = [
        { status: 'running' },
        ['a', 1, null, true, { n: -2.5, b: 'z', a: 'y' }],
        'plain é 漢字 🚀 "quoted" \\ tab\t, line\nbreak, U+2028 \u2028, lone \ud800, nul \u0000',
        null,
        12345678901234,
        {},
      ];
      const events = [
        ...eventChain(values),
        { id: { ms: 1_800_000_000_000, seq: 7 }, prev: null, type: 'chart.point', json: '{ "spaced" : [1, 2] }' },
      ];
      await archive.insert(of(runId, events));
      assert.deepEqual(await archive.read(runId, null, 100), events);
      assert.deepEqual(await archive.read(runId, events[1]!.id, 2), events.slice(2, 4));
      assert.deepEqual(await archive.read(runId, events.at(-1)!.id, 100), []);
      assert.deepEqual(await archive.lastId(runId), events.at(-1)!.id);
      assert.equal(await archive.endId(runId), null);
    });

    it("keeps an agent's own event types as they are", async () => {
      const archive = new EventArchiveRepository(deps.db());
      const runId = await deps.newRunId();
      const types = ['progress', 'chart.point', 'token', 'x-1_y'];
      await archive.insert(of(runId, eventChain([1, 2, 3, 4], { type: (i) => types[i]! })));
      assert.deepEqual(
        (await archive.read(runId, null, 100)).map((event) => event.type),
        types,
      );
    });

    it('cuts pages by count and by bytes exactly, at chunk boundaries and inside chunks', async () => {
      const archive = new EventArchiveRepository(deps.db());
      const runId = await deps.newRunId();
      const events = eventChain(
        Array.from({ length: 12 }, (_, i) => `event ${i.toString().padStart(2, '0')}`),
        { perMs: 2 },
      );
      for (const part of [events.slice(0, 5), events.slice(5, 6), events.slice(6, 12)]) await archive.insert(of(runId, part));
      assert.deepEqual(
        await chunkRows(runId),
        [5, 1, 6].map((n) => ({ n, bytes: n * eventBytes(events[0]!) })),
      );
      await assertEveryPage(archive, runId, events);

      // Sizes that differ: the bound counts each event's own bytes, astral characters as two units as the reader does.
      const mixed = await deps.newRunId();
      const varied = eventChain([{ text: 'x'.repeat(1_000) }, null, { text: 'é'.repeat(300) }, { text: '🚀'.repeat(500) }, 'z']);
      await archive.insert(of(mixed, varied.slice(0, 2)));
      await archive.insert(of(mixed, varied.slice(2)));
      const upTo = (n: number) => varied.slice(0, n).reduce((sum, event) => sum + eventBytes(event), 0);
      for (const n of [1, 2, 3, 4]) {
        assert.deepEqual(await archive.read(mixed, null, 100, upTo(n)), varied.slice(0, n), `exactly the first ${n}`);
        assert.deepEqual(await archive.read(mixed, null, 100, upTo(n) + 1), varied.slice(0, n + 1), 'the event reaching the bound is in');
      }
      assert.deepEqual(await archive.read(mixed, null, 100, 1), varied.slice(0, 1), 'at least one');
    });

    it('gives each event once, in order, when chunks from different writers overlap', async () => {
      const archive = new EventArchiveRepository(deps.db());
      const runId = await deps.newRunId();
      const events = eventChain(Array.from({ length: 12 }, (_, i) => i));
      // A writer's chunks, a dead writer's tail archived again from its first unarchived event, one inside another.
      for (const [from, to] of [
        [0, 6],
        [3, 9],
        [4, 5],
        [9, 12],
        [10, 11],
      ] as const) {
        await archive.insert(of(runId, events.slice(from, to)));
      }
      await assertEveryPage(archive, runId, events);
      assert.deepEqual(await archive.lastId(runId), events.at(-1)!.id);

      // The chunk that begins last does not end last.
      const nested = await deps.newRunId();
      await archive.insert(of(nested, events.slice(0, 8)));
      await archive.insert(of(nested, events.slice(2, 4)));
      assert.deepEqual(await archive.lastId(nested), events[7]!.id);
      assert.deepEqual(await archive.read(nested, events[2]!.id, 100), events.slice(3, 8));
    });

    it('keeps the longer of two chunks with the same first event, whichever came first, so a retried batch is safe', async () => {
      const archive = new EventArchiveRepository(deps.db());
      const runId = await deps.newRunId();
      const events = eventChain(['first', 'second', 'third', 'fourth']);
      await archive.insert(of(runId, events.slice(0, 2)));
      await archive.insert(of(runId, events.slice(0, 3)));
      await archive.insert(of(runId, events.slice(0, 1)));
      assert.deepEqual(await archive.read(runId, null, 100), events.slice(0, 3));
      assert.deepEqual(await chunkRows(runId), [{ n: 3, bytes: events.slice(0, 3).reduce((sum, event) => sum + eventBytes(event), 0) }]);
      // The same events twice in one batch (a dead writer's tail added again): each once.
      await archive.insert(of(runId, [...events, ...events.slice(2)]));
      assert.deepEqual(await archive.read(runId, null, 100), events);
    });

    it("cuts a run's events into chunks of at most 64 KiB of event bytes (one larger event alone)", async () => {
      const archive = new EventArchiveRepository(deps.db());
      const runId = await deps.newRunId();
      const events = eventChain([...Array.from({ length: 200 }, (_, i) => `${i} ${'x'.repeat(900)}`), 'y'.repeat(100_000), 'after']);
      await archive.insert(of(runId, events));
      const rows = await chunkRows(runId);
      assert.deepEqual(
        rows.map((row) => row.n),
        chunkEvents(of(runId, events)).map((chunk) => chunk.events.length),
      );
      assert.ok(rows.length >= 4, `${rows.length} chunks`);
      for (const row of rows) assert.ok(row.bytes <= 64 * 1024 || row.n === 1, JSON.stringify(row));
      assert.equal(rows.at(-2)?.n, 1, 'the large event is a chunk of its own');
      assert.deepEqual(await archive.read(runId, null, 1_000), events);
      assert.deepEqual(await archive.read(runId, null, 1_000, 256 * 1024), expectedPage(events, null, 1_000, 256 * 1024));
    });

    it('gives back text that is one SSE data line, with line breaks inside strings escaped', async () => {
      const archive = new EventArchiveRepository(deps.db());
      const runId = await deps.newRunId();
      const value = { text: 'one\ntwo\r\nthree', nested: ['\n'] };
      await archive.insert(of(runId, eventChain([value])));
      const [read] = await archive.read(runId, null, 10);
      assert.ok(read);
      assert.doesNotMatch(read.json, /[\r\n]/);
      const lines = sseFrame(read).split('\n');
      assert.equal(lines.filter((line) => line.startsWith('data: ')).length, 1);
      assert.deepEqual(JSON.parse(lines[2]!.slice('data: '.length)), value);
    });

    it('endId is the id of the end in whichever chunk holds it; lastId the greatest id archived', async () => {
      const archive = new EventArchiveRepository(deps.db());
      const runId = await deps.newRunId();
      assert.equal(await archive.endId(runId), null);
      assert.equal(await archive.lastId(runId), null);
      const events = eventChain(['a', 'b', 'c', { status: 'completed' }], { type: (i) => (i === 3 ? 'end' : 'token') });
      await archive.insert(of(runId, events.slice(0, 2)));
      assert.equal(await archive.endId(runId), null);
      assert.deepEqual(await archive.lastId(runId), events[1]!.id);
      await archive.insert(of(runId, events.slice(2)));
      assert.deepEqual(await archive.endId(runId), events[3]!.id);
      assert.deepEqual(await archive.lastId(runId), events[3]!.id);
    });

    describe('refusals', () => refusalTests(deps));

    it("moves the archive of the previous schema (a row per event) into chunks, each event's JSON as jsonb wrote it", async () => {
      const local = await deps.factory({ migrate: true });
      try {
        const db = local.db;
        // The database as the previous release left it: the archive a row per event, migration 8 not applied.
        await db.query(`DROP TABLE run_event_chunks`);
        await db.query(`DELETE FROM agentd_migrations WHERE id = 8`);
        await db.query(`CREATE TABLE run_events (
          run_id uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE, ms bigint NOT NULL, seq integer NOT NULL,
          prev_ms bigint, prev_seq integer, type text NOT NULL, data jsonb, PRIMARY KEY (run_id, ms, seq))`);
        const runId = await deps.newRunId(db);
        const values = [{ b: 'é 🚀 "q"\n', a: [1, 2.5, null] }, null, 'x', { status: 'completed' }];
        const events = eventChain(values, { type: (i) => (i === 3 ? 'end' : i === 2 ? 'chart.point' : 'token') });
        for (const { id, prev, type, json } of events) {
          await db.query(`INSERT INTO run_events VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)`, [
            runId,
            id.ms,
            id.seq,
            prev?.ms ?? null,
            prev?.seq ?? null,
            type,
            json,
          ]);
        }
        // A SQL NULL, which the previous release read as JSON null.
        await db.query(`INSERT INTO run_events VALUES ($1, $2, 1, $2, 0, 'token', NULL)`, [runId, events[2]!.id.ms]);
        await migrate(db);

        assert.equal((await db.query(`SELECT to_regclass('run_events') AS t`))[0]?.t, null, 'the old table is gone');
        const archive = new EventArchiveRepository(db);
        const read = await archive.read(runId, null, 100);
        const jsonbText = (await db.query<{ t: string }>(`SELECT $1::jsonb::text AS t`, [events[0]!.json]))[0]!.t;
        assert.deepEqual(
          read.map((event) => event.json),
          [jsonbText, 'null', '"x"', 'null', '{"status": "completed"}'],
        );
        assert.deepEqual(
          read.map((event) => event.type),
          ['token', 'token', 'chart.point', 'token', 'end'],
        );
        assert.deepEqual(read[0]!.prev, null);
        assert.deepEqual(read[1]!.prev, events[0]!.id);
        assert.deepEqual(await archive.endId(runId), events.at(-1)!.id);
        assert.deepEqual(await archive.lastId(runId), events.at(-1)!.id);
        const rows = await db.query<{ n: number; bytes: number }>(
          `SELECT event_count AS n, event_bytes AS bytes FROM run_event_chunks ORDER BY first_ms, first_seq`,
        );
        // Bytes as the database counts characters (an astral one once, not as two UTF-16 units): never more than the reader's.
        assert.deepEqual(
          rows.map((row) => [Number(row.n), Number(row.bytes)]),
          read.map((event) => [1, [...event.json].length + eventBytes(event) - event.json.length]),
        );
      } finally {
        await local.teardown();
      }
    });

    it("ensureEnd writes a run's missing end once, after its last archived event", async () => {
      const archive = new EventArchiveRepository(deps.db());
      const runId = await deps.newRunId();
      const events = eventChain(['a', 'b']);
      await archive.insert(of(runId, events));
      const store = new MemoryEventStore({ ttlSeconds: 60, onError: (e) => assert.fail(String(e)) });
      const archiver = new EventArchiver({ repository: archive, intervalMs: 60_000, onError: (e) => assert.fail(String(e)) });
      try {
        const log = new EventLog({ store, archiver, archive, onError: (e) => assert.fail(String(e)) });
        const error = { code: 'instance_lost', message: 'gone \u0000 "quoted"' };
        const finishedAtMs = events.at(-1)!.id.ms + 5_000;
        await log.ensureEnd(runId, { status: 'interrupted', error }, finishedAtMs);
        await log.ensureEnd(runId, { status: 'interrupted', error }, finishedAtMs);
        assert.deepEqual(await archive.read(runId, events.at(-1)!.id, 10), [
          { id: { ms: finishedAtMs, seq: 0 }, prev: events.at(-1)!.id, type: 'end', json: eventJson({ status: 'interrupted', error }) },
        ]);
        assert.match(eventJson(error), /gone \\ufffd/);
      } finally {
        await archiver.close();
        await store.close();
      }
    });
  });
}

function refusalTests(deps: EventArchiveContractDeps): void {
  /** Archives the batch through an archiver; returns the runs of the events it refused. */
  async function archiveRefusing(archive: EventArchiveRepository, batch: readonly ArchivedEvent[]): Promise<string[]> {
    const rejected: string[] = [];
    const archiver = new EventArchiver({
      repository: archive,
      intervalMs: 60_000,
      onError: (e) => assert.fail(String(e)),
      onRejected: (runId) => rejected.push(runId),
    });
    try {
      for (const { runId, event } of batch) archiver.add(runId, event);
      await archiver.flush();
    } finally {
      await archiver.close();
    }
    return rejected;
  }

  it('refuses, as content rather than unavailability, text the database cannot hold; the archiver skips only that event', async () => {
    const archive = new EventArchiveRepository(deps.db());
    const [runId, other] = [await deps.newRunId(), await deps.newRunId()];
    // A raw U+0000 (eventJson never makes one: JSON.stringify escapes it) is no Postgres text.
    const events = eventChain(['before', 'nul', 'after']).map((event, i) => (i === 1 ? { ...event, json: '"raw \u0000"' } : event));
    const batch = [...of(runId, events), ...of(other, eventChain(['elsewhere']))];
    await assert.rejects(archive.insert(batch), (err: unknown) => !(err instanceof DependencyUnavailableError));
    assert.deepEqual(await archive.read(runId, null, 10), [], 'one statement: nothing of the batch');

    assert.deepEqual(await archiveRefusing(archive, batch), [runId]);
    assert.deepEqual(await archive.read(runId, null, 10), [events[0], events[2]]);
    assert.equal((await archive.read(other, null, 10)).length, 1);
  });

  it('refuses JSON text with a raw line break before any statement (it could not be framed); the archiver skips only that event', async () => {
    const archive = new EventArchiveRepository(deps.db());
    const runId = await deps.newRunId();
    const events = eventChain(['before', 'broken', 'after']).map((event, i) => (i === 1 ? { ...event, json: '{"a":\n1}' } : event));
    await assert.rejects(
      archive.insert(of(runId, events)),
      (err: unknown) => err instanceof EventChunkTextError && err.code === 'line_break',
    );
    assert.deepEqual(await archiveRefusing(archive, of(runId, events)), [runId]);
    assert.deepEqual(await archive.read(runId, null, 10), [events[0], events[2]]);
  });
}
