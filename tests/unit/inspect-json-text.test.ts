import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { inspectJsonText } from '../../src/lib/inspect-json-text.js';

const inspect = (text: string | Buffer, maxDepth = 4) => inspectJsonText(typeof text === 'string' ? Buffer.from(text) : text, maxDepth);

describe('inspectJsonText', () => {
  it('passes JSON that can be kept, surrogate pairs and escaped backslashes included', () => {
    for (const text of [
      '{}',
      '{"a": [1, {"b": null}], "c": "x"}',
      '"\\ud83d\\ude00"',
      '"\\uD83D\\uDE00 \\u00e9 \\n \\" \\\\"',
      '"\\\\ud800"',
      '"\\\\u0000"',
      '"[[[[[[[[{{{{{{{"',
      '"\u{1F600} é"',
    ]) {
      assert.equal(inspect(text), null, text);
    }
  });

  it('finds lone surrogates in values and keys, at any depth', () => {
    for (const text of [
      '"\\ud800"',
      '"\\udc00"',
      '"a\\udbff"',
      '"\\ud800\\u0041"',
      '"\\ud800x"',
      '"\\ud800\\n"',
      '"\\ud83d\\ud83d\\ude00"',
      '"\\ude00\\ud83d"',
      '{"\\ud800": 1}',
      '[[{"k": ["ok", "\\uDFFF"]}]]',
    ]) {
      assert.equal(inspect(text), 'lone_surrogate', text);
    }
  });

  it('counts nesting outside strings only, up to the limit', () => {
    assert.equal(inspect('[[[[1]]]]'), null);
    assert.equal(inspect('[[[[[1]]]]]'), 'too_deep');
    assert.equal(inspect('{"a":{"b":[{"c":[1]}]}}'), 'too_deep');
    assert.equal(inspect('[[[[1]]]], [[[[1]]]]'), null, 'siblings do not add up');
    assert.equal(inspect('["[[[[[[", {"]]]]": "{{{{{{"}]'), null);
    assert.equal(inspect(`${'['.repeat(100_000)}${']'.repeat(100_000)}`, 64), 'too_deep');
  });

  it('finds NUL characters, escaped or raw', () => {
    assert.equal(inspect('"a\\u0000b"'), 'nul_character');
    assert.equal(inspect(Buffer.from([0x22, 0x61, 0x00, 0x22])), 'nul_character');
  });

  it('refuses bytes that are not UTF-8, surrogates encoded as UTF-8 among them', () => {
    assert.equal(inspect(Buffer.from([0x22, 0xed, 0xa0, 0x80, 0x22])), 'not_utf8');
    assert.equal(inspect(Buffer.from([0x22, 0xff, 0x22])), 'not_utf8');
    assert.equal(inspect(Buffer.from([0x22, 0xc3, 0x22])), 'not_utf8');
  });
});
