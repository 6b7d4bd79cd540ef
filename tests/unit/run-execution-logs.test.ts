/**
 * What a run writes to the log, with fakes for its storage: every line written while it runs
 * carries its run and account (whichever logger wrote it), and it ends with one `run finished`
 * line holding its status, error code, queue wait and duration; an agent that threw is logged
 * at warn with its stack, and the run's input never.
 */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { FairSemaphore } from '../../src/concurrency/fair-semaphore.js';
import type { Agent, RunRecord } from '../../src/domain/index.js';
import { createLogger } from '../../src/observability/logger.js';
import { LingeringAgents } from '../../src/runtime/lingering-agents.js';
import { RunExecution, type RunExecutionDeps } from '../../src/runtime/run-execution.js';
import { RunRecorder } from '../../src/runtime/run-recorder.js';
import type { EventLog } from '../../src/streaming/event-log.js';

const INPUT_MARKER = 'MARK-input-never-logged';

function capturedLogger() {
  const stream = new PassThrough();
  let text = '';
  stream.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
  const logger = createLogger('debug', { stream, defaultMeta: { instance_id: 'inst-1' } });
  const lines = () =>
    text
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as Record<string, any>);
  return { logger, lines, text: () => text };
}

function record(id: string, status: 'running' | 'queued'): RunRecord {
  return {
    id,
    accountId: 'acct-1',
    agent: 'test',
    status,
    sessionId: null,
    input: INPUT_MARKER,
    model: null,
    metadata: null,
    timeoutMs: 10_000,
    instanceId: 'inst-1',
    createdAt: new Date(),
    startedAt: null,
    finishedAt: null,
    error: null,
    output: null,
  } as unknown as RunRecord;
}

function deps(logger: ReturnType<typeof createLogger>): RunExecutionDeps {
  const eventLog = {
    append: () => 0,
    drain: async () => true,
    flushArchive: async () => undefined,
    hasEnd: async () => false,
  } as unknown as EventLog;
  return {
    runs: { get: async () => null },
    services: () => ({ llm: { chat: () => Promise.reject(new Error('no llm')) }, offload: () => Promise.reject(new Error('no offload')) }),
    recorder: new RunRecorder({ transition: async (id, _from, to) => ({ ...record(id, 'running'), status: to }) }, logger),
    eventLog,
    observer: { runAdmitted: () => undefined, runStarted: () => undefined, runFinished: () => undefined },
    lingering: new LingeringAgents(),
    maxEventsPerRun: 100,
    maxEventBytes: 10_000,
    eventBacklogBytes: 100_000,
    eventBacklogWaitMs: 1_000,
  };
}

/** An agent that logs through the root logger (as the runtime's own parts do), not ctx.logger. */
function agent(root: ReturnType<typeof createLogger>, run: () => Promise<void>): Agent {
  return {
    name: 'test',
    description: 'test',
    inputSchema: undefined as never,
    async run(ctx) {
      root.info('inside the run', { seen_run: ctx.runId });
      ctx.logger.debug('from the agent');
      await run();
    },
  };
}

describe('RunExecution logs', () => {
  it('puts run_id and account_id on every line written while it runs, and one run finished line at its end', async () => {
    const { logger, lines, text } = capturedLogger();
    const slots = new FairSemaphore({ capacity: 1, queueMax: 1, queueTimeoutMs: 10_000 });
    const shared = deps(logger);
    const first = new RunExecution(
      record('run-1', 'running'),
      agent(logger, () => sleep(30)),
      INPUT_MARKER,
      shared,
      logger,
    );
    const second = new RunExecution(
      record('run-2', 'queued'),
      agent(logger, async () => undefined),
      INPUT_MARKER,
      shared,
      logger,
    );
    const a = first.start(slots.acquire('run-1', 'acct-1'));
    const b = second.start(slots.acquire('run-2', 'acct-1'));
    await Promise.all([a, b]);
    logger.info('after the runs');

    const inside = lines().filter((line) => line.message === 'inside the run');
    assert.deepEqual(
      inside.map((line) => [line.seen_run, line.run_id, line.account_id, line.instance_id]),
      [
        ['run-1', 'run-1', 'acct-1', 'inst-1'],
        ['run-2', 'run-2', 'acct-1', 'inst-1'],
      ],
    );
    assert.equal(lines().find((line) => line.message === 'from the agent')?.agent, 'test');
    assert.equal(lines().find((line) => line.message === 'after the runs')?.run_id, undefined);

    const finished = lines().filter((line) => line.message === 'run finished');
    assert.equal(finished.length, 2);
    const [one, two] = [finished.find((l) => l.run_id === 'run-1')!, finished.find((l) => l.run_id === 'run-2')!];
    assert.deepEqual([one.level, one.status, one.agent, one.account_id, one.queue_wait_ms], ['info', 'completed', 'test', 'acct-1', 0]);
    assert.ok(one.duration_ms >= 30, `ran ${one.duration_ms} ms`);
    assert.equal(one.error_code, undefined);
    assert.ok(two.queue_wait_ms >= 30, `waited ${two.queue_wait_ms} ms behind run-1`);
    assert.doesNotMatch(text(), /MARK-input/);
  });

  it('logs a run whose agent threw at warn, with the error code and the agent’s stack', async () => {
    const { logger, lines, text } = capturedLogger();
    const slots = new FairSemaphore({ capacity: 1, queueMax: 0, queueTimeoutMs: 1_000 });
    const failing = agent(logger, async () => {
      throw new TypeError('the agent broke', { cause: new Error('deeper') });
    });
    await new RunExecution(record('run-3', 'running'), failing, INPUT_MARKER, deps(logger), logger).start(slots.acquire('run-3', 'acct-1'));
    const line = lines().find((each) => each.message === 'run finished')!;
    assert.equal(line.level, 'warn');
    assert.equal(line.status, 'failed');
    assert.equal(line.error_code, 'agent_error');
    assert.equal(line.error.name, 'TypeError');
    assert.equal(line.error.message, 'the agent broke');
    assert.match(line.error.stack, /^TypeError: the agent broke\n\s+at /);
    assert.equal(line.error.cause.message, 'deeper');
    assert.doesNotMatch(text(), /MARK-input/);
  });
});
