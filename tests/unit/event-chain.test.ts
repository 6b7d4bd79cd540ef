import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { continuesFrom, takeChain, type RunEvent } from '../../src/domain/index.js';
import { runEvent } from '../helpers/events.js';

describe('takeChain', () => {
  const first = runEvent(1);
  const second = runEvent(2, { prev: first.id });
  const third = runEvent(3, { prev: second.id });

  it('takes the events that continue the chain, and stops at a gap', () => {
    const afterGap = runEvent(9, { prev: runEvent(8).id });
    assert.deepEqual(takeChain([first, second, third, afterGap], null), [first, second, third]);
    assert.deepEqual(takeChain([second, third], first.id), [second, third]);
    assert.deepEqual(takeChain([third], first.id), [], 'the second is missing');
  });

  it("ends at the run's end, even when a writer swept while cut off went on after it", () => {
    const end: RunEvent = runEvent(3, { prev: second.id, type: 'end' });
    const zombie = runEvent(4, { prev: second.id }); // chained to what its writer saw last
    assert.ok(continuesFrom(zombie, end.id), 'it would pass as the next event');
    assert.deepEqual(takeChain([first, second, end, zombie], null), [first, second, end]);
  });
});
