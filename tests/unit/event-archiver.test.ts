import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { ArchivedEvent, EventArchiveRepository, EventChunk } from '../../src/db/event-archive-repository.js';
import { DependencyUnavailableError, eventBytes } from '../../src/domain/index.js';
import { EventArchiver } from '../../src/streaming/event-archiver.js';
import { runEvent } from '../helpers/events.js';

const event = (ms: number, data: unknown = {}) => runEvent(ms, { data });

/** A repository that stores what it is given, refusing what `refuse` says; `calls` counts the events of each insert. */
function fakeRepository(refuse: (events: readonly ArchivedEvent[]) => Error | null) {
  const stored: ArchivedEvent[] = [];
  const calls: number[] = [];
  const chunks: EventChunk[][] = [];
  const repository = {
    async insertChunks(given: readonly EventChunk[]) {
      const events = given.flatMap((chunk) => chunk.events.map((event) => ({ runId: chunk.runId, event })));
      calls.push(events.length);
      const error = refuse(events);
      if (error !== null) throw error;
      chunks.push([...given]);
      stored.push(...events);
    },
  } as unknown as EventArchiveRepository;
  return { repository, stored, calls, chunks };
}

/** An archiver that writes only when flushed, failing the test on any error but a refusal, which it reports into `rejected`. */
function reportingRefusals(repository: EventArchiveRepository, rejected: string[]): EventArchiver {
  return new EventArchiver({
    repository,
    intervalMs: 60_000,
    onError: (e) => assert.fail(String(e)),
    onRejected: (runId) => rejected.push(runId),
  });
}

describe('EventArchiver', () => {
  let archiver: EventArchiver;
  afterEach(() => archiver.close());

  it('writes pending events in order, in batches of at most maxBatch', async () => {
    const fake = fakeRepository(() => null);
    archiver = new EventArchiver({ repository: fake.repository, intervalMs: 60_000, maxBatch: 4, onError: (e) => assert.fail(String(e)) });
    for (let ms = 1; ms <= 10; ms += 1) archiver.add('run', event(ms));
    await archiver.flush();
    assert.deepEqual(fake.calls, [4, 4, 2]);
    assert.deepEqual(
      fake.stored.map((e) => e.event.id.ms),
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    );
    assert.equal(archiver.pendingCount, 0);
  });

  it("writes each run's events of a batch as one chunk, in order, however the runs' events were interleaved", async () => {
    const fake = fakeRepository(() => null);
    archiver = new EventArchiver({ repository: fake.repository, intervalMs: 60_000, onError: (e) => assert.fail(String(e)) });
    for (let ms = 1; ms <= 9; ms += 1) archiver.add(['a', 'b', 'c'][ms % 3]!, event(ms));
    await archiver.flush();
    assert.deepEqual(
      fake.chunks.map((batch) => batch.map((chunk) => [chunk.runId, chunk.events.map((e) => e.id.ms), chunk.bytes])),
      [
        [
          ['b', [1, 4, 7], 3 * eventBytes(event(1))],
          ['c', [2, 5, 8], 3 * eventBytes(event(1))],
          ['a', [3, 6, 9], 3 * eventBytes(event(1))],
        ],
      ],
    );
  });

  it('bounds a batch by the size of its events too', async () => {
    const fake = fakeRepository(() => null);
    archiver = new EventArchiver({ repository: fake.repository, intervalMs: 60_000, onError: (e) => assert.fail(String(e)) });
    const large = 'x'.repeat(3 * 1024 * 1024);
    for (let ms = 1; ms <= 5; ms += 1) archiver.add('run', event(ms, large));
    await archiver.flush();
    assert.deepEqual(fake.calls, [2, 2, 1], 'two 3 Mi-character events per batch under the 8 Mi bound');
  });

  it('keeps everything while the database is unreachable, and writes it once it is back', async () => {
    let down = true;
    const fake = fakeRepository(() => (down ? new DependencyUnavailableError('database') : null));
    archiver = new EventArchiver({ repository: fake.repository, intervalMs: 60_000, onError: (e) => assert.fail(String(e)) });
    archiver.add('run', event(1));
    archiver.add('run', event(2));
    await assert.rejects(archiver.flush(), DependencyUnavailableError);
    assert.equal(archiver.pendingCount, 2);
    down = false;
    await archiver.flush();
    assert.deepEqual(
      fake.stored.map((e) => e.event.id.ms),
      [1, 2],
    );
  });

  it('isolates an event the database refuses, archives the rest, and reports it once', async () => {
    const fake = fakeRepository((events) => (events.some((e) => e.runId === 'bad') ? new Error('22P05') : null));
    const rejected: string[] = [];
    archiver = reportingRefusals(fake.repository, rejected);
    for (let ms = 1; ms <= 7; ms += 1) archiver.add(ms === 5 ? 'bad' : 'good', event(ms));
    await archiver.flush();
    assert.deepEqual(rejected, ['bad']);
    assert.deepEqual(
      fake.stored.map((e) => e.event.id.ms),
      [1, 2, 3, 4, 6, 7],
    );
    archiver.add('good', event(8));
    await archiver.flush();
    assert.equal(fake.stored.at(-1)?.event.id.ms, 8, 'archiving goes on');
    assert.equal(archiver.insertedCount, 7, 'the refused event is not counted as archived');
  });

  it("isolates a refused event inside a run's chunk: the chunks first, then that chunk's events, halved", async () => {
    const fake = fakeRepository((events) => (events.some((e) => e.event.id.ms === 6) ? new Error('22P05') : null));
    const rejected: string[] = [];
    archiver = reportingRefusals(fake.repository, rejected);
    for (let ms = 1; ms <= 8; ms += 1) archiver.add('one', event(ms));
    archiver.add('other', event(9));
    await archiver.flush();
    assert.deepEqual(rejected, ['one']);
    assert.deepEqual(
      fake.stored.map((e) => e.event.id.ms),
      [1, 2, 3, 4, 5, 7, 8, 9],
    );
    assert.deepEqual(fake.calls, [9, 8, 4, 4, 2, 1, 1, 2, 1], "the other run's chunk goes in whole, after the first split");
  });

  it("counts each run's backlog in bytes until its events are archived, and keeps it while they cannot be", async () => {
    let down = true;
    const fake = fakeRepository(() => (down ? new DependencyUnavailableError('database') : null));
    archiver = new EventArchiver({ repository: fake.repository, intervalMs: 60_000, maxBatch: 2, onError: (e) => assert.fail(String(e)) });
    const a = [event(1, 'x'.repeat(100)), event(2, 'y'), event(3, 'z'.repeat(50))];
    const b = event(4, 'b');
    assert.equal(archiver.add('a', a[0]!), eventBytes(a[0]!));
    assert.equal(archiver.add('b', b), eventBytes(b), "another run's events are not this one's backlog");
    assert.equal(archiver.add('a', a[1]!), eventBytes(a[0]!) + eventBytes(a[1]!));
    assert.equal(archiver.add('a', a[2]!), eventBytes(a[0]!) + eventBytes(a[1]!) + eventBytes(a[2]!));
    const total = [...a, b].reduce((sum, e) => sum + eventBytes(e), 0);
    assert.equal(archiver.pendingBytes, total);
    await assert.rejects(archiver.flush(), DependencyUnavailableError);
    assert.equal(archiver.pendingBytes, total, 'kept while the database is away');
    down = false;
    await archiver.flush();
    assert.equal(archiver.pendingBytes, 0);
    assert.equal(archiver.add('a', event(5)), eventBytes(event(5)), 'a fresh backlog once archived');
  });
});
