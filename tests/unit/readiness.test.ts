import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { READY_FAILURE_GRACE_MS, Readiness } from '../../src/http/readiness.js';

describe('Readiness', () => {
  it('stays ready through a blip shorter than the grace, and fails once a dependency keeps failing', async () => {
    let nowMs = 1_000;
    let up = true;
    let draining = false;
    const readiness = new Readiness(
      { database: async () => (up ? undefined : Promise.reject(new Error('connection refused'))) },
      () => draining,
      () => nowMs,
    );
    assert.deepEqual(await readiness.report(), { ready: true, failures: [], degraded: [] });
    up = false;
    const blip = await readiness.report();
    assert.equal(blip.ready, true);
    assert.match(blip.degraded.join(), /database: connection refused/);
    nowMs += READY_FAILURE_GRACE_MS - 1;
    assert.equal((await readiness.report()).ready, true);
    nowMs += 1;
    const down = await readiness.report();
    assert.equal(down.ready, false);
    assert.match(down.failures.join(), /database: connection refused \(failing for 3000 ms\)/);
    up = true;
    assert.equal((await readiness.report()).ready, true, 'one good probe and it is back');
    draining = true;
    assert.deepEqual((await readiness.report()).failures, ['draining: the instance is shutting down']);
  });
});
