import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeEventChunk, encodeEventChunk, EventChunkTextError } from '../../src/db/event-chunk-text.js';
import type { RunEvent } from '../../src/domain/index.js';
import { eventChain } from '../helpers/events.js';

const isCode = (code: EventChunkTextError['code']) => (error: unknown) => error instanceof EventChunkTextError && error.code === code;

describe('event chunk text', () => {
  it("gives back each event's id, chain, type and JSON text exactly as written", () => {
    const values = [
      { status: 'running' },
      'spaces  and\ttabs, "quotes", \\ backslashes, line\nbreaks\r\n',
      'unicode é 漢字 🚀, a lone surrogate \ud800, U+2028 \u2028 and U+2029 \u2029',
      null,
      [1, 2.5e-7, -0, true],
      {},
    ];
    const events = eventChain(values, { perMs: 2, type: (i) => (i === values.length - 1 ? 'end' : 'chart.point') });
    // Spacing a serialiser would not choose: it is kept as it is.
    const spaced: RunEvent = {
      id: { ms: 9_999_999_999_999, seq: 123_456 },
      prev: events.at(-1)!.id,
      type: 'x-1_y',
      json: '{ "a" : [ 1 , 2 ] }',
    };
    const all = [...events, spaced];
    const text = encodeEventChunk(all);
    assert.equal(text.split('\n').length, all.length + 1, 'one line per event');
    assert.deepEqual(decodeEventChunk(text), all);
  });

  it('writes an absent prev as "- -"', () => {
    const [first] = eventChain(['a']);
    assert.equal(encodeEventChunk([first!]), `${first!.id.ms} 0 - - token "a"\n`);
  });

  it('refuses JSON text that is empty or holds a line break, naming the event and not its data', () => {
    for (const json of ['', '"a"\n', '{"a":\r1}']) {
      const event: RunEvent = { id: { ms: 5, seq: 1 }, prev: null, type: 'token', json };
      assert.throws(
        () => encodeEventChunk([event]),
        (error: unknown) => isCode('line_break')(error) && (error as Error).message.includes('5-1'),
      );
    }
  });

  it('refuses malformed text with a clear error', () => {
    const malformed = [
      '',
      '1 0 - - token "a"', // no final line break
      '1 0 - - token\n', // no JSON
      '1 0 - - token \n', // empty JSON
      '1 0 - token "a"\n', // a field missing
      'x 0 - - token "a"\n',
      '1 0 3 - token "a"\n',
      '1 0 - - Token "a"\n',
      '1 0 - - token "a"\n\n',
    ];
    for (const text of malformed) {
      assert.throws(() => decodeEventChunk(text), isCode('malformed'), JSON.stringify(text));
    }
    assert.throws(() => decodeEventChunk('1 0 - - token "a"\nbad'), /at event 2/);
  });
});
