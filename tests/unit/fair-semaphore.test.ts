import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FairSemaphore, type Permit, QueueFullError, QueueTimeoutError, WaitCancelledError } from '../../src/concurrency/fair-semaphore.js';

function acquired(sem: FairSemaphore, holder: string, group = 'g'): Permit {
  const a = sem.acquire(holder, group);
  assert.equal(a.kind, 'acquired');
  return a.permit;
}

describe('FairSemaphore', () => {
  it('names holders and releases idempotently', () => {
    const sem = new FairSemaphore({ capacity: 2, queueMax: 0, queueTimeoutMs: 1000 });
    const a = acquired(sem, 'a');
    acquired(sem, 'b');
    assert.deepEqual(sem.holders().sort(), ['a', 'b']);
    assert.throws(() => sem.acquire('c', 'g'), QueueFullError);
    a.release();
    a.release();
    assert.equal(sem.inUse, 1);
    assert.deepEqual(sem.holders(), ['b']);
  });

  it('refuses a holder that already holds a permit', () => {
    const sem = new FairSemaphore({ capacity: 2, queueMax: 0, queueTimeoutMs: 1000 });
    acquired(sem, 'a');
    assert.throws(() => sem.acquire('a', 'g'));
  });

  it('serves queued groups round-robin, not first-come', async () => {
    const sem = new FairSemaphore({ capacity: 1, queueMax: 10, queueTimeoutMs: 10_000 });
    const first = acquired(sem, 'first');
    const order: string[] = [];
    const waiters = ['a1', 'a2', 'a3'].map((h) => sem.acquire(h, 'A'));
    waiters.push(sem.acquire('b1', 'B'));
    assert.equal(sem.queued, 4);
    const done = waiters.map(async (w) => {
      assert.equal(w.kind, 'queued');
      const permit = await w.waiter.granted;
      order.push(permit.holder);
      permit.release();
    });
    first.release();
    await Promise.all(done);
    assert.deepEqual(order, ['a1', 'b1', 'a2', 'a3']);
    assert.equal(sem.inUse, 0);
    assert.equal(sem.queued, 0);
  });

  it('times out a waiter and frees its place', async () => {
    const sem = new FairSemaphore({ capacity: 1, queueMax: 1, queueTimeoutMs: 20 });
    const p = acquired(sem, 'a');
    const q = sem.acquire('b', 'g');
    assert.equal(q.kind, 'queued');
    await assert.rejects(q.waiter.granted, QueueTimeoutError);
    assert.equal(sem.queued, 0);
    p.release();
    assert.equal(sem.inUse, 0);
  });

  it('cancels a waiter exactly once and never grants it', async () => {
    const sem = new FairSemaphore({ capacity: 1, queueMax: 2, queueTimeoutMs: 10_000 });
    const p = acquired(sem, 'a');
    const q = sem.acquire('b', 'g');
    assert.equal(q.kind, 'queued');
    assert.equal(q.waiter.cancel(), true);
    assert.equal(q.waiter.cancel(), false);
    await assert.rejects(q.waiter.granted, WaitCancelledError);
    p.release();
    assert.equal(sem.inUse, 0);
    assert.equal(sem.queued, 0);
  });

  it('does not let a newcomer jump ahead of waiters', async () => {
    const sem = new FairSemaphore({ capacity: 1, queueMax: 5, queueTimeoutMs: 10_000 });
    const p = acquired(sem, 'a');
    const q = sem.acquire('b', 'g');
    p.release();
    // 'b' was granted synchronously on release, so the newcomer must queue.
    const c = sem.acquire('c', 'g');
    assert.equal(c.kind, 'queued');
    assert.equal(q.kind, 'queued');
    (await q.waiter.granted).release();
    (await c.waiter.granted).release();
    assert.equal(sem.inUse, 0);
  });
});
