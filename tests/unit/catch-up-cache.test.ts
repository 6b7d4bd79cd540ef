import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { eventBytes, type RunEvent } from '../../src/domain/index.js';
import { ByteBudget } from '../../src/lib/byte-budget.js';
import { CatchUpCache } from '../../src/streaming/redis/catch-up-cache.js';
import { eventChain } from '../helpers/events.js';

/** `count` chained events of one run, the last an `end` when asked; each costs `bytes` (`eventBytes`). */
function run(count: number, { end = false } = {}) {
  const events = eventChain(
    Array.from({ length: count }, (_, i) => ({ i: i % 10 })),
    { type: (i) => (end && i === count - 1 ? 'end' : 'token') },
  );
  return { events, bytes: eventBytes(events[0] as RunEvent) };
}

const roomy = () => new ByteBudget(1024 * 1024);
const at = (events: readonly RunEvent[], index: number) => (events[index] as RunEvent).id;

describe('CatchUpCache', () => {
  it('answers a page it holds whole (full by count or bytes, or ending with the `end`), whatever `complete` says', () => {
    const { events, bytes } = run(10);
    const cache = new CatchUpCache({ maxEvents: 100, maxBytes: 100 * bytes }, roomy());
    cache.extend(events);
    assert.deepEqual(cache.page(null, 4, Number.MAX_SAFE_INTEGER, false), events.slice(0, 4));
    assert.deepEqual(cache.page(at(events, 3), 4, Number.MAX_SAFE_INTEGER, false), events.slice(4, 8));
    assert.deepEqual(cache.page(null, 100, 3 * bytes - 1, false), events.slice(0, 3), 'up to the event that reaches maxBytes');
    assert.equal(cache.page(at(events, 7), 4, Number.MAX_SAFE_INTEGER, false), undefined, 'short: Redis may hold more');
    assert.deepEqual(cache.page(at(events, 7), 4, Number.MAX_SAFE_INTEGER, true), events.slice(8), 'short, but complete');
    assert.deepEqual(cache.page(at(events, 9), 4, Number.MAX_SAFE_INTEGER, true), [], 'caught up');

    const ended = run(5, { end: true });
    const finished = new CatchUpCache({ maxEvents: 100, maxBytes: 100 * bytes }, roomy());
    finished.extend(ended.events);
    assert.deepEqual(finished.page(at(ended.events, 1), 100, Number.MAX_SAFE_INTEGER, false), ended.events.slice(2));
  });

  it('holds one chain from the run start: it starts at a first event and stops at a gap, skipping what it holds', () => {
    const { events, bytes } = run(10);
    const cache = new CatchUpCache({ maxEvents: 100, maxBytes: 100 * bytes }, roomy());
    cache.extend(events.slice(2, 5));
    assert.equal(cache.size, 0, 'not from the run start');
    cache.extend(events.slice(0, 3));
    cache.extend(events.slice(1, 5)); // overlapping: a read and live events
    assert.equal(cache.size, 5);
    assert.equal(cache.add(events[6] as RunEvent), false, 'a gap');
    cache.extend([...events.slice(5, 7), events[8] as RunEvent, events[9] as RunEvent]);
    assert.deepEqual(cache.page(null, 100, Number.MAX_SAFE_INTEGER, true), events.slice(0, 7), 'up to the gap');
    cache.extend(events.slice(7));
    assert.equal(cache.size, 10, 'filled from its tail on');
  });

  it('stops growing at its bound in events or bytes, keeping the first pages; later pages are not its to answer', () => {
    const { events, bytes } = run(20);
    const byCount = new CatchUpCache({ maxEvents: 5, maxBytes: 100 * bytes }, roomy());
    byCount.extend(events);
    assert.equal(byCount.size, 5);
    byCount.extend(events.slice(5)); // full: it stays full
    assert.equal(byCount.size, 5);
    assert.deepEqual(byCount.page(null, 5, Number.MAX_SAFE_INTEGER, false), events.slice(0, 5));
    assert.equal(byCount.page(at(events, 2), 5, Number.MAX_SAFE_INTEGER, false), undefined);

    const budget = roomy();
    const byBytes = new CatchUpCache({ maxEvents: 100, maxBytes: 3 * bytes + 1 }, budget);
    byBytes.extend(events);
    assert.equal(byBytes.size, 3);
    assert.equal(budget.used, 3 * bytes);
  });

  it('takes its bytes from the shared budget: past it, a cache holds what it got; released, it gives them back', () => {
    const { events, bytes } = run(10);
    const budget = new ByteBudget(6 * bytes);
    const first = new CatchUpCache({ maxEvents: 100, maxBytes: 100 * bytes }, budget);
    const second = new CatchUpCache({ maxEvents: 100, maxBytes: 100 * bytes }, budget);
    first.extend(events.slice(0, 4));
    second.extend(events);
    assert.equal(second.size, 2, 'what the budget had left');
    assert.equal(budget.used, 6 * bytes);
    assert.equal(second.page(at(events, 1), 4, Number.MAX_SAFE_INTEGER, false), undefined, 'beyond it: read Redis');
    first.release();
    first.release(); // idempotent
    assert.equal(budget.used, 2 * bytes);
    assert.equal(first.page(null, 1, Number.MAX_SAFE_INTEGER, true), undefined, 'a released cache answers nothing');
    second.release();
    assert.equal(budget.used, 0);
  });
});

describe('ByteBudget', () => {
  it('takes up to its limit, refuses past it, and takes again what was given back', () => {
    const budget = new ByteBudget(10);
    assert.equal(budget.take(6), true);
    assert.equal(budget.take(5), false);
    assert.equal(budget.used, 6);
    budget.give(6);
    assert.equal(budget.take(10), true);
    assert.throws(() => new ByteBudget(-1), RangeError);
  });
});
