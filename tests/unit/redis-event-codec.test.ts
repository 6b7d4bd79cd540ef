import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseStreamEntry, streamEntryOf } from '../../src/streaming/redis/redis-event-codec.js';
import type { RunEvent } from '../../src/domain/index.js';

const event: RunEvent = {
  id: { ms: 1_700_000_000_000, seq: 2 },
  prev: { ms: 1_700_000_000_000, seq: 1 },
  type: 'token',
  json: '{"text":"é \\n 🚀"}',
};

describe('redis event codec', () => {
  it('writes the JSON text as the d field and reads it back as it is', () => {
    const entry = streamEntryOf(event);
    assert.deepEqual(entry, { id: '1700000000000-2', type: 'token', json: event.json, prev: '1700000000000-1' });
    assert.deepEqual(parseStreamEntry([entry.id, ['t', entry.type, 'd', entry.json, 'p', entry.prev]]), event);
  });

  it("carries an agent's own event type as it is", () => {
    const custom: RunEvent = { ...event, type: 'chart.point', json: '{"x":1}' };
    const entry = streamEntryOf(custom);
    assert.deepEqual(parseStreamEntry([entry.id, ['t', entry.type, 'd', entry.json, 'p', entry.prev]]), custom);
  });

  it('reads fields in any order, ignores unknown ones, and reads an empty p as the first event', () => {
    assert.deepEqual(parseStreamEntry(['5-0', ['x', 'y', 'p', '', 'd', 'null', 't', 'end']]), {
      id: { ms: 5, seq: 0 },
      prev: null,
      type: 'end',
      json: 'null',
    });
  });

  it('refuses malformed entries', () => {
    const fields = ['t', 'token', 'd', '{}', 'p', ''];
    const malformed: Array<[string, unknown]> = [
      ['not an entry', 'x'],
      ['a bad id', ['1', fields]],
      ['no fields', ['1-0', null]],
      ['a type no agent may emit', ['1-0', ['t', 'Not A Type', 'd', '{}', 'p', '']]],
      ['no d', ['1-0', ['t', 'token', 'p', '']]],
      ['an empty d', ['1-0', ['t', 'token', 'd', '', 'p', '']]],
      ['a line break in d', ['1-0', ['t', 'token', 'd', '"a\nb"', 'p', '']]],
      ['a carriage return in d', ['1-0', ['t', 'token', 'd', '"a\rb"', 'p', '']]],
      ['no p', ['1-0', ['t', 'token', 'd', '{}']]],
      ['a bad p', ['1-0', ['t', 'token', 'd', '{}', 'p', 'x']]],
    ];
    assert.notEqual(parseStreamEntry(['1-0', fields]), null);
    for (const [what, entry] of malformed) assert.equal(parseStreamEntry(entry), null, what);
  });
});
