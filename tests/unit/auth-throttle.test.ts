import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AuthThrottle } from '../../src/http/auth-throttle.js';

describe('AuthThrottle', () => {
  it('lets a few failures through at once, then slows each further one, up to a cap', () => {
    const throttle = new AuthThrottle({ freeFailures: 2, windowMs: 60_000, stepMs: 100, maxDelayMs: 250, maxAddresses: 10 });
    const delays = Array.from({ length: 6 }, () => throttle.fail('10.0.0.1', 1_000));
    assert.deepEqual(delays, [0, 0, 100, 200, 250, 250]);
  });

  it('counts addresses separately and forgets them after the window', () => {
    const throttle = new AuthThrottle({ freeFailures: 1, windowMs: 1_000, stepMs: 100, maxDelayMs: 1_000, maxAddresses: 10 });
    throttle.fail('a', 0);
    assert.equal(throttle.fail('a', 10), 100);
    assert.equal(throttle.fail('b', 10), 0);
    assert.equal(throttle.fail('a', 2_000), 0, 'a new window');
  });

  it('tracks a bounded number of addresses', () => {
    const throttle = new AuthThrottle({ freeFailures: 0, windowMs: 60_000, stepMs: 100, maxDelayMs: 1_000, maxAddresses: 2 });
    throttle.fail('a', 0);
    throttle.fail('b', 0);
    throttle.fail('c', 0); // forgets a, the oldest
    assert.equal(throttle.fail('a', 1), 100, 'a starts over');
  });
});
