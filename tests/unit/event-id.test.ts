import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compareEventIds, EVENT_ID, EventIdGenerator, formatEventId, parseEventId } from '../../src/domain/index.js';

describe('event ids', () => {
  it('round-trips <ms>-<seq>', () => {
    assert.deepEqual(parseEventId('1700000000000-3'), { ms: 1700000000000, seq: 3 });
    assert.equal(formatEventId({ ms: 5, seq: 0 }), '5-0');
  });
  it('rejects malformed ids', () => {
    for (const bad of ['', '1', '1-', '-1', 'a-1', '1-2-3', '1.5-2', ' 1-2', '1-2 ', '99999999999999999-1']) {
      assert.equal(parseEventId(bad), null, bad);
    }
  });
  it('accepts exactly what EVENT_ID matches', () => {
    const samples = ['0-0', '1-2', '999999999999999-999999999', '1000000000000000-1', '1-1000000000', '01-02', '1--2', '1-+2', '1-2\n'];
    for (const text of samples) assert.equal(parseEventId(text) !== null, EVENT_ID.test(text), text);
    assert.deepEqual(parseEventId('01-02'), { ms: 1, seq: 2 });
  });
  it('compares as number pairs, not strings', () => {
    assert.ok(compareEventIds({ ms: 9, seq: 0 }, { ms: 10, seq: 0 }) < 0);
    assert.ok(compareEventIds({ ms: 10, seq: 2 }, { ms: 10, seq: 10 }) < 0);
    assert.equal(compareEventIds({ ms: 10, seq: 2 }, { ms: 10, seq: 2 }), 0);
  });
  it('increases strictly within a millisecond and when the clock steps back', () => {
    const ids = new EventIdGenerator();
    const a = ids.next(100);
    const b = ids.next(100);
    const c = ids.next(90);
    const d = ids.next(101);
    assert.deepEqual([a, b, c, d].map(formatEventId), ['100-0', '100-1', '100-2', '101-0']);
  });
});
