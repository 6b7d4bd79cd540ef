import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { keySlot } from '../../src/streaming/redis/redis-key-slot.js';
import { RedisKeys } from '../../src/streaming/redis/redis-keys.js';

describe('keySlot (Redis Cluster hash slots)', () => {
  it('matches the slots Redis documents and answers', () => {
    // CRC16/XMODEM of "123456789" is 0x31C3 (the cluster spec's check value).
    assert.equal(keySlot('123456789'), 0x31c3);
    assert.equal(keySlot('foo'), 12_182);
    assert.equal(keySlot('bar'), 5_061);
  });

  it('hashes only a non-empty hash tag: the first {…}', () => {
    assert.equal(keySlot('{user1000}.following'), keySlot('user1000'));
    assert.equal(keySlot('{user1000}.followers'), keySlot('{user1000}.following'));
    assert.notEqual(keySlot('foo{}{bar}'), keySlot('bar'), 'an empty first tag: the whole key is hashed');
    assert.equal(keySlot('foo{{bar}}zap'), keySlot('{bar'));
  });

  it('puts every key of a run in one slot, and different runs apart', () => {
    const keys = new RedisKeys('agentd:');
    assert.equal(keySlot(keys.runStream('run-a')), keySlot(keys.cancelRequested('run-a')));
    assert.equal(keySlot(keys.runStream('run-a')), keySlot('run-a'));
    const slots = new Set(Array.from({ length: 100 }, (_, i) => keySlot(keys.runStream(`run-${i}`))));
    assert.ok(slots.size > 90, `100 runs over ${slots.size} slots`);
  });
});
