import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { createLogger } from '../../src/observability/logger.js';
import { RunContext } from '../../src/runtime/run-context.js';
import type { RunEvent } from '../../src/domain/index.js';

interface ContextOptions {
  maxEvents?: number;
  maxEventBytes?: number;
  backlogBytes?: number;
  /** The run's backlog after each append (default 0). */
  backlogAfter?: (appended: readonly RunEvent[]) => number;
  /** What the log's drain answers (default: drained). */
  drain?: () => Promise<boolean>;
  signal?: AbortSignal;
}

function context(options: ContextOptions = {}) {
  const appended: RunEvent[] = [];
  const limits: string[] = [];
  const backlogs: string[] = [];
  const drains: number[] = [];
  const ctx = new RunContext({
    runId: 'r',
    input: null,
    model: null,
    sessionId: null,
    signal: options.signal ?? new AbortController().signal,
    logger: createLogger('error'),
    services: { llm: { chat: () => Promise.reject(new Error('no llm')) }, offload: () => Promise.reject(new Error('no offload')) },
    eventLog: {
      append: (_runId, event) => {
        appended.push(event);
        return options.backlogAfter?.(appended) ?? 0;
      },
      drain: (timeoutMs) => {
        drains.push(timeoutMs);
        return options.drain?.() ?? Promise.resolve(true);
      },
    },
    maxEvents: options.maxEvents ?? 100,
    maxEventBytes: options.maxEventBytes ?? 1000,
    backlogBytes: options.backlogBytes ?? 1_000,
    backlogWaitMs: 5_000,
    onEventLimit: (message) => limits.push(message),
    onEventBacklog: (detail) => backlogs.push(detail),
  });
  return { ctx, appended, limits, backlogs, drains };
}

/** Whether the promise settled within a turn of the event loop. */
async function settledNow(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  void promise.then(() => (settled = true));
  await nextTurn();
  return settled;
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

  it("takes an agent's own event types and refuses the runtime's and malformed ones at once", () => {
    const { ctx, appended } = context();
    ctx.emit('progress', { done: 1 });
    ctx.emit('chart.point-2_b', { x: 1 });
    for (const type of ['status', 'error', 'end']) {
      assert.throws(() => ctx.emit(type, {}), { name: 'TypeError', message: `ctx.emit: "${type}" events belong to the runtime` });
    }
    for (const type of ['', 'Progress', '1st', 'has space', 'x'.repeat(65), 'new\nline']) {
      assert.throws(() => ctx.emit(type, {}), { name: 'TypeError', message: /does not match/ });
    }
    // What an agent in plain JavaScript may pass: refused here, before it could reach Redis.
    for (const type of [undefined, null, 42, ['token']]) {
      assert.throws(() => ctx.emit(type as unknown as string, {}), { name: 'TypeError', message: /event type must be a string/ });
    }
    assert.deepEqual(
      appended.map((e) => e.type),
      ['progress', 'chart.point-2_b'],
    );
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

  describe('back-pressure', () => {
    it('answers every emit under the bound with the same settled promise (nothing allocated per event)', async () => {
      const { ctx, drains } = context({ backlogAfter: (events) => events.length * 100 });
      const first = ctx.emit('token', { text: 'a' });
      assert.equal(ctx.emit('token', { text: 'b' }), first);
      assert.equal(await settledNow(first), true);
      assert.deepEqual(drains, []);
    });

    it('waits past the bound until the backlog drains, one drain for the emits made meanwhile', async () => {
      let drained!: (ok: boolean) => void;
      const { ctx, drains, backlogs } = context({
        backlogBytes: 1_000,
        backlogAfter: (events) => events.length * 400,
        drain: () => new Promise((resolve) => (drained = resolve)),
      });
      assert.equal(await settledNow(ctx.emit('token', { n: 1 })), true, '400 bytes');
      assert.equal(await settledNow(ctx.emit('token', { n: 2 })), true, '800 bytes');
      const waiting = ctx.emit('token', { n: 3 }); // 1,200 bytes: past the bound
      const alsoWaiting = ctx.emit('token', { n: 4 });
      assert.equal(alsoWaiting, waiting, 'the same wait');
      assert.equal(await settledNow(waiting), false);
      assert.deepEqual(drains, [5_000], 'one drain, with RUN_EVENT_BACKLOG_WAIT_MS');
      drained(true);
      await waiting;
      assert.deepEqual(backlogs, []);
    });

    it('fails the run when the backlog does not drain in time, and drops what comes after', async () => {
      const { ctx, appended, backlogs } = context({ backlogAfter: () => 1_500, drain: () => Promise.resolve(false) });
      await ctx.emit('token', { n: 1 });
      assert.equal(backlogs.length, 1);
      assert.match(backlogs[0] ?? '', /RUN_EVENT_BACKLOG_WAIT_MS/);
      await ctx.emit('token', { n: 2 });
      assert.equal(appended.length, 1, 'nothing after the failure');
      assert.equal(backlogs.length, 1, 'reported once');
    });

    it('fails the run at once past twice the bound: an agent that does not await emit', async () => {
      const { ctx, backlogs, drains } = context({ backlogAfter: (events) => events.length * 900 });
      void ctx.emit('token', { n: 1 });
      void ctx.emit('token', { n: 2 }); // 1,800: waits
      void ctx.emit('token', { n: 3 }); // 2,700: past twice the bound
      assert.equal(backlogs.length, 1);
      assert.match(backlogs[0] ?? '', /twice RUN_EVENT_BACKLOG_BYTES/);
      assert.equal(drains.length, 1);
    });

    it('does not fail a run whose wait ended because the run was aborted', async () => {
      const controller = new AbortController();
      const { ctx, backlogs } = context({
        signal: controller.signal,
        backlogAfter: () => 1_500,
        drain: async () => {
          controller.abort();
          return false;
        },
      });
      await ctx.emit('token', { n: 1 });
      assert.deepEqual(backlogs, []);
    });

    it("never counts the runtime's own events against the run", () => {
      const { ctx, backlogs, drains } = context({ backlogAfter: () => 10_000 });
      ctx.emitSystem('end', { status: 'completed' });
      assert.deepEqual(backlogs, []);
      assert.deepEqual(drains, []);
    });
  });
});
