import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ListenerLimitError } from '../../src/domain/index.js';
import { Followers } from '../../src/streaming/followers.js';

describe('Followers', () => {
  it('counts followers in all and per account, and refuses one past the per-account limit', () => {
    const followers = new Followers(2);
    const a1 = followers.open('a');
    const a2 = followers.open('a');
    const b1 = followers.open('b');
    assert.equal(followers.count, 3);
    assert.equal(followers.accounts, 2);
    assert.throws(
      () => followers.open('a'),
      (error: unknown) => error instanceof ListenerLimitError && error.status === 429 && error.details.retry_after_s === 1,
    );
    assert.equal(followers.countOf('a'), 2, 'a refused follower is not counted');
    a1();
    a1(); // idempotent
    assert.equal(followers.countOf('a'), 1);
    const a3 = followers.open('a');
    for (const close of [a2, a3, b1]) close();
    assert.equal(followers.count, 0);
    assert.equal(followers.accounts, 0, 'an account with none is forgotten');
  });

  it('adds up what was written to followers, write by write', () => {
    const followers = new Followers();
    followers.wrote(3, 300);
    followers.wrote(0, 8); // a heartbeat
    assert.deepEqual(followers.sent, { events: 3, bytes: 308 });
  });
});
