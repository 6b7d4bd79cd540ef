import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sseFrame, sseFrameOf } from '../../src/http/sse/sse-frame.js';
import { runEvent } from '../helpers/events.js';

const withData = (data: unknown) => runEvent(1_700_000_000_000, { seq: 3, data });

describe('sseFrame', () => {
  it('sends the event as id, event and one data line of its JSON text', () => {
    const event = withData({ text: 'hi' });
    assert.equal(sseFrame(event), 'id: 1700000000000-3\nevent: token\ndata: {"text":"hi"}\n\n');
    assert.equal(sseFrame(event), sseFrame(event), 'built once');
  });

  it("builds an event's frame once while it is recent, and tells apart events with the same id", () => {
    const event = withData({ text: 'hi' });
    assert.equal(sseFrameOf(event), sseFrameOf(event), 'the same frame object');
    const twin = withData({ text: 'other' });
    assert.equal(sseFrame(twin), 'id: 1700000000000-3\nevent: token\ndata: {"text":"other"}\n\n');
    assert.equal(sseFrame(event), 'id: 1700000000000-3\nevent: token\ndata: {"text":"hi"}\n\n');
  });

  it('keeps no large frame: a large event is built for each send, so the table stays within its bytes', () => {
    const big = withData({ text: 'x'.repeat(64 * 1024) });
    assert.notEqual(sseFrameOf(big), sseFrameOf(big), 'built again');
    assert.equal(sseFrameOf(big).text, sseFrameOf(big).text);
  });

  it('measures the frame in UTF-8 bytes, not characters (what /metrics counts as sent)', () => {
    const frame = sseFrameOf(withData({ text: 'héllo ✓' }));
    assert.equal(frame.text, sseFrame(withData({ text: 'héllo ✓' })));
    assert.equal(frame.bytes, frame.text.length + 1 + 2);
  });

  it('keeps line breaks inside strings on the one data line, and the value round-trips', () => {
    const value = { text: 'one\ntwo\r\nthree\rfour', list: ['\n', '\u2028'] };
    const lines = sseFrame(withData(value)).split(/\r\n|\r|\n/);
    assert.deepEqual(lines.slice(0, 2), ['id: 1700000000000-3', 'event: token']);
    assert.deepEqual(lines.slice(3), ['', ''], 'the frame ends after one data line');
    const data = lines[2] ?? '';
    assert.ok(data.startsWith('data: '));
    assert.deepEqual(JSON.parse(data.slice('data: '.length)), value);
  });
});
