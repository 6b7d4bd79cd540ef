import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GroupCommit, type GroupCommitOptions } from '../../src/concurrency/group-commit.js';

class Unavailable extends Error {}
class Refused extends Error {}

interface Req {
  readonly n: number;
  readonly bad?: boolean;
  readonly group?: string;
  readonly bytes?: number;
}

/**
 * A store that answers n × 10, refuses any batch or request with a `bad` request, and fails
 * everything while `down`. `hold` makes the next batch wait until its release is called.
 */
function fakeStore() {
  const batches: number[][] = [];
  const singles: number[] = [];
  const refused: Array<{ error: unknown; size: number }> = [];
  const state = { down: false, hold: undefined as Promise<void> | undefined };
  let started: (() => void) | undefined;
  const options: GroupCommitOptions<Req, number> = {
    async commitBatch(batch) {
      batches.push(batch.map((r) => r.n));
      started?.();
      const hold = state.hold;
      state.hold = undefined;
      await hold;
      if (state.down) throw new Unavailable('down');
      if (batch.some((r) => r.bad)) throw new Refused('bad batch');
      return batch.map((r) => r.n * 10);
    },
    async commitOne(request) {
      singles.push(request.n);
      if (state.down) throw new Unavailable('down');
      if (request.bad) throw new Refused(`bad ${request.n}`);
      return request.n * 10;
    },
    isUnavailable: (error) => error instanceof Unavailable,
    maxBatch: 4,
    closedError: () => new Unavailable('closed'),
    onBatchRefused: (error, size) => refused.push({ error, size }),
  };
  /** Makes the next batch wait; resolves `started` once it is being written. */
  function holdNext(): { started: Promise<void>; release: () => void } {
    let release!: () => void;
    state.hold = new Promise<void>((resolve) => (release = resolve));
    const begun = new Promise<void>((resolve) => (started = resolve));
    return { started: begun, release };
  }
  return { options, batches, singles, refused, state, holdNext };
}

describe('GroupCommit', () => {
  it('writes the requests of one turn as one batch and gives each caller its own result', async () => {
    const store = fakeStore();
    const group = new GroupCommit(store.options);
    const results = await Promise.all([1, 2, 3].map((n) => group.submit({ n })));
    assert.deepEqual(results, [10, 20, 30]);
    assert.deepEqual(store.batches, [[1, 2, 3]]);
    assert.deepEqual(store.singles, []);
    await group.close();
  });

  it('keeps one batch in flight: what arrives meanwhile goes together in the next one', async () => {
    const store = fakeStore();
    const group = new GroupCommit(store.options);
    const held = store.holdNext();
    const first = group.submit({ n: 1 });
    await held.started;
    const later = [2, 3, 4].map((n) => group.submit({ n }));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(store.batches, [[1]], 'nothing else starts while the first batch is written');
    held.release();
    assert.deepEqual(await Promise.all([first, ...later]), [10, 20, 30, 40]);
    assert.deepEqual(store.batches, [[1], [2, 3, 4]]);
    await group.close();
  });

  it('allows maxInFlight batches at once', async () => {
    const store = fakeStore();
    const group = new GroupCommit({ ...store.options, maxBatch: 2, maxInFlight: 2 });
    const held = store.holdNext();
    const all = [1, 2, 3, 4, 5].map((n) => group.submit({ n }));
    await held.started;
    await new Promise((resolve) => setImmediate(resolve));
    // Only the first batch is held: the second is written beside it, then the third follows it.
    assert.deepEqual(store.batches, [[1, 2], [3, 4], [5]], 'the second batch does not wait for the first');
    held.release();
    assert.deepEqual(await Promise.all(all), [10, 20, 30, 40, 50]);
    assert.deepEqual(store.batches, [[1, 2], [3, 4], [5]]);
    await group.close();
  });

  it('caps batches by count and by bytes, in order', async () => {
    const store = fakeStore();
    const group = new GroupCommit({ ...store.options, maxBatchBytes: 100, bytesOf: (r) => r.bytes ?? 0 });
    await Promise.all([1, 2, 3, 4, 5, 6].map((n) => group.submit({ n })));
    await Promise.all([
      group.submit({ n: 7, bytes: 60 }),
      group.submit({ n: 8, bytes: 60 }),
      group.submit({ n: 9, bytes: 500 }),
      group.submit({ n: 10, bytes: 10 }),
    ]);
    assert.deepEqual(store.batches, [[1, 2, 3, 4], [5, 6], [7], [8], [9], [10]]);
    await group.close();
  });

  it('puts only requests that may share a statement in one batch, keeping each group in order', async () => {
    const store = fakeStore();
    const group = new GroupCommit({ ...store.options, sameBatch: (a, b) => a.group === b.group });
    const requests: Req[] = [
      { n: 1, group: 'a' },
      { n: 2, group: 'b' },
      { n: 3, group: 'a' },
      { n: 4, group: 'b' },
    ];
    assert.deepEqual(await Promise.all(requests.map((r) => group.submit(r))), [10, 20, 30, 40]);
    assert.deepEqual(store.batches, [
      [1, 3],
      [2, 4],
    ]);
    await group.close();
  });

  it('retries a refused batch one request at a time, in order: only the request at fault fails', async () => {
    const store = fakeStore();
    const group = new GroupCommit(store.options);
    const settled = await Promise.allSettled([group.submit({ n: 1 }), group.submit({ n: 2, bad: true }), group.submit({ n: 3 })]);
    assert.deepEqual(
      settled.map((s) => (s.status === 'fulfilled' ? s.value : (s.reason as Error).message)),
      [10, 'bad 2', 30],
    );
    assert.deepEqual(store.singles, [1, 2, 3]);
    assert.equal(store.refused.length, 1);
    assert.equal(store.refused[0]?.size, 3);
    assert.match(String(store.refused[0]?.error), /bad batch/);
    await group.close();
  });

  it('retries one at a time when the batch returns the wrong number of results', async () => {
    const store = fakeStore();
    const group = new GroupCommit({ ...store.options, commitBatch: async () => [1] });
    assert.deepEqual(await Promise.all([group.submit({ n: 1 }), group.submit({ n: 2 })]), [10, 20]);
    assert.match(String(store.refused[0]?.error), /2 requests returned 1 results/);
    await group.close();
  });

  it('fails every request of a batch while the database is unreachable, and the next batch works', async () => {
    const store = fakeStore();
    const group = new GroupCommit(store.options);
    store.state.down = true;
    const failed = await Promise.allSettled([1, 2, 3].map((n) => group.submit({ n })));
    for (const result of failed) {
      assert.equal(result.status, 'rejected');
      assert.ok(result.reason instanceof Unavailable);
    }
    assert.deepEqual(store.singles, [], 'an outage is not retried one request at a time');
    assert.deepEqual(store.refused, []);
    store.state.down = false;
    assert.deepEqual(await Promise.all([4, 5].map((n) => group.submit({ n }))), [40, 50]);
    await group.close();
  });

  it('an outage while retrying one at a time fails the rest at once', async () => {
    const store = fakeStore();
    const group = new GroupCommit({
      ...store.options,
      async commitOne(request) {
        store.singles.push(request.n);
        if (request.n === 2) throw new Unavailable('gone');
        return request.n * 10;
      },
    });
    const settled = await Promise.allSettled([group.submit({ n: 1, bad: true }), group.submit({ n: 2 }), group.submit({ n: 3 })]);
    assert.deepEqual(
      settled.map((s) => (s.status === 'fulfilled' ? s.value : (s.reason as Error).message)),
      [10, 'gone', 'gone'],
    );
    assert.deepEqual(store.singles, [1, 2]);
    await group.close();
  });

  it('close writes what was submitted, then refuses new requests; it is idempotent', async () => {
    const store = fakeStore();
    const group = new GroupCommit(store.options);
    const held = store.holdNext();
    const first = group.submit({ n: 1 });
    await held.started;
    const second = group.submit({ n: 2 });
    const closed = group.close();
    assert.equal(group.close(), closed);
    await assert.rejects(group.submit({ n: 3 }), Unavailable);
    let done = false;
    void closed.then(() => (done = true));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(done, false, 'close waits for the batch in flight');
    held.release();
    await closed;
    assert.deepEqual(await Promise.all([first, second]), [10, 20]);
    assert.deepEqual(store.batches, [[1], [2]]);
  });

  it('close on an idle instance resolves at once', async () => {
    const group = new GroupCommit(fakeStore().options);
    await group.close();
  });

  it('refuses a batch size or in-flight count below 1', () => {
    const { options } = fakeStore();
    assert.throws(() => new GroupCommit({ ...options, maxBatch: 0 }), RangeError);
    assert.throws(() => new GroupCommit({ ...options, maxInFlight: 1.5 }), RangeError);
  });
});
