import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLogger } from '../../src/observability/logger.js';
import { RunContext } from '../../src/runtime/run-context.js';
import type { RunEvent } from '../../src/domain/index.js';

function context(options: { maxEvents?: number; maxEventBytes?: number } = {}) {
  const appended: RunEvent[] = [];
  const limits: string[] = [];
  const ctx = new RunContext({
    runId: 'r',
    input: null,
    model: null,
    sessionId: null,
    signal: new AbortController().signal,
    logger: createLogger('error'),
    eventLog: { append: (_runId, event) => appended.push(event) },
    maxEvents: options.maxEvents ?? 100,
    maxEventBytes: options.maxEventBytes ?? 1000,
    onEventLimit: (message) => limits.push(message),
  });
  return { ctx, appended, limits };
}

describe('RunContext', () => {
  it('chains events by prev and keeps the last message as the output', () => {
    const { ctx, appended } = context();
    ctx.emit('token', { text: 'a' });
    ctx.emit('message', { role: 'assistant', content: 'hi' });
    ctx.emitSystem('end', { status: 'completed' });
    assert.equal(appended[0]?.prev, null);
    assert.deepEqual(appended[1]?.prev, appended[0]?.id);
    assert.deepEqual(appended[2]?.prev, appended[1]?.id);
    assert.deepEqual(ctx.output, { role: 'assistant', content: 'hi' });
  });

  it("carries each event's data as its JSON text, undefined as null", () => {
    const { ctx, appended } = context();
    ctx.emit('token', { text: 'line\nbreak', n: 1 });
    ctx.emit('tool', undefined);
    ctx.emitSystem('end', { status: 'completed' });
    assert.deepEqual(
      appended.map((event) => event.json),
      ['{"text":"line\\nbreak","n":1}', 'null', '{"status":"completed"}'],
    );
  });

  it('replaces a NUL character, which Postgres cannot store, and keeps escaped backslashes', () => {
    const { ctx, appended } = context();
    ctx.emit('message', { content: 'a\u0000b', literal: '\\u0000' });
    ctx.emitSystem('error', { message: 'agent said \u0000' });
    assert.deepEqual(JSON.parse(appended[0]?.json ?? ''), { content: 'a\uFFFDb', literal: '\\u0000' });
    assert.deepEqual(ctx.output, { content: 'a\uFFFDb', literal: '\\u0000' }, 'the output is what the event carries');
    assert.deepEqual(JSON.parse(appended[1]?.json ?? ''), { message: 'agent said \uFFFD' }, "in the runtime's events too");
  });

  it('stops at the event limits and drops what comes after', () => {
    const { ctx, appended, limits } = context({ maxEvents: 2, maxEventBytes: 20 });
    ctx.emit('token', { text: 'x'.repeat(50) });
    assert.equal(appended.length, 0);
    assert.match(limits[0] ?? '', /MAX_EVENT_BYTES/);
    ctx.emit('token', { text: 'late' });
    assert.equal(appended.length, 0, 'nothing after the limit');
  });

  it('drops events once closed to the agent', () => {
    const { ctx, appended } = context();
    ctx.closeToAgent();
    ctx.emit('token', { text: 'late' });
    assert.equal(appended.length, 0);
  });
});
