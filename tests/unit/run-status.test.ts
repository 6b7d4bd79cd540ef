import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canTransition, isFinal, RUN_STATUSES, transitionPairs, TRANSITIONS } from '../../src/domain/index.js';

describe('run status state machine', () => {
  it('never leaves a final status', () => {
    for (const status of RUN_STATUSES) {
      if (isFinal(status)) assert.deepEqual(TRANSITIONS[status], [], status);
    }
  });
  it('lets a queued run start, fail, be cancelled or interrupted, but not complete', () => {
    assert.ok(canTransition('queued', 'running'));
    assert.ok(canTransition('queued', 'cancelled'));
    assert.ok(!canTransition('queued', 'completed'));
    assert.ok(!canTransition('queued', 'timed_out'));
  });
  it('ends a running run in any final status and never goes back', () => {
    for (const to of ['completed', 'failed', 'cancelled', 'timed_out', 'interrupted'] as const) assert.ok(canTransition('running', to));
    assert.ok(!canTransition('running', 'queued'));
    assert.ok(!canTransition('completed', 'running'));
  });
  it('exports exactly the table as pairs (what the migration stores)', () => {
    const count = RUN_STATUSES.reduce((n, s) => n + TRANSITIONS[s].length, 0);
    assert.equal(transitionPairs().length, count);
  });
});
