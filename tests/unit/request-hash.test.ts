import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonicalJson } from '../../src/lib/canonical-json.js';
import { type RequestFields, requestHash } from '../../src/runtime/request-hash.js';

const base: RequestFields = {
  agent: 'echo',
  input: { a: 1, b: [1, { c: 2, d: 3 }] },
  sessionId: 's',
  model: null,
  timeoutMs: null,
  metadata: { k: 'v' },
};

describe('canonicalJson', () => {
  it('sorts keys at every level and keeps array order', () => {
    assert.equal(canonicalJson({ b: 1, a: [{ z: 1, y: 2 }, 3] }), '{"a":[{"y":2,"z":1},3],"b":1}');
    assert.equal(canonicalJson(JSON.parse('{"a": 1.0, "b": 1e2}')), '{"a":1,"b":100}');
    assert.equal(canonicalJson('\u{1F600}"'), JSON.stringify('\u{1F600}"'));
    assert.equal(canonicalJson(null), 'null');
  });
});

describe('requestHash', () => {
  it('is the same for the same request whatever its key order', () => {
    const reordered: RequestFields = { ...base, input: JSON.parse('{"b": [1, {"d": 3, "c": 2}], "a": 1}'), metadata: { k: 'v' } };
    assert.equal(requestHash(reordered), requestHash(base));
    assert.match(requestHash(base), /^[0-9a-f]{64}$/);
  });

  it('treats an absent input or metadata as null, as the contract does', () => {
    assert.equal(requestHash({ ...base, input: undefined, metadata: undefined }), requestHash({ ...base, input: null, metadata: null }));
  });

  it('changes with every meaningful field', () => {
    const changes: Array<Partial<RequestFields>> = [
      { agent: 'simulate' },
      { input: { a: 2, b: [1, { c: 2, d: 3 }] } },
      { input: [1, { c: 2, d: 3 }] },
      { input: '{"a":1}' },
      { sessionId: null },
      { model: 'm' },
      { timeoutMs: 1000 },
      { metadata: null },
      { metadata: { k: 'w' } },
    ];
    const hashes = new Set([requestHash(base), ...changes.map((change) => requestHash({ ...base, ...change }))]);
    assert.equal(hashes.size, changes.length + 1);
  });
});
