import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { createLogger, type LoggerOptions } from '../../src/observability/logger.js';

/** A logger writing to memory, and the lines it wrote so far. */
function capture(level = 'debug', options: LoggerOptions = {}) {
  const stream = new PassThrough();
  let text = '';
  stream.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
  const logger = createLogger(level, { ...options, stream });
  const lines = () => text.split('\n').filter((line) => line !== '');
  return { logger, lines, json: () => lines().map((line) => JSON.parse(line) as Record<string, any>) };
}

describe('createLogger (json)', () => {
  it('writes one JSON object per line, time, level and message first, at LOG_LEVEL and above', () => {
    const { logger, lines, json } = capture('info', { defaultMeta: { instance_id: 'i-1' } });
    logger.debug('hidden');
    logger.info('shown', { count: 2 });
    assert.equal(lines().length, 1);
    const [line] = json();
    assert.deepEqual(Object.keys(line!).slice(0, 4), ['timestamp', 'level', 'message', 'instance_id']);
    assert.equal(line!.count, 2);
    assert.ok(!Number.isNaN(Date.parse(line!.timestamp)));
  });

  it('writes Errors in the fields with message, stack and causes, never as {}', () => {
    const { logger, json } = capture();
    const cause = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' });
    logger.error('failed', { error: new Error('outer', { cause }), nested: { error: new RangeError('inner') } });
    const [line] = json();
    assert.equal(line!.error.message, 'outer');
    assert.match(line!.error.stack, /^Error: outer\n\s+at /);
    assert.equal(line!.error.cause.code, 'ECONNREFUSED');
    assert.equal(line!.error.cause.message, 'connect ECONNREFUSED 127.0.0.1:6379');
    assert.equal(line!.nested.error.name, 'RangeError');
  });

  it('writes a line whose fields hold a cycle or a BigInt', () => {
    const { logger, json } = capture();
    class Loop {
      readonly self = this;
    }
    logger.info('odd fields', { loop: new Loop(), big: 10n ** 20n });
    const [line] = json();
    assert.deepEqual(line!.loop, { self: '[Circular]' });
    assert.equal(line!.big, '100000000000000000000');
  });

  it('adds the context to every line written inside it, by the logger and its children, and only there', async () => {
    const { logger, json } = capture();
    const child = logger.child({ agent: 'echo' });
    await logger.withContext({ request_id: 'req-1' }, async () => {
      logger.info('in request');
      await logger.withContext({ run_id: 'run-1', account_id: 'acct-1' }, async () => {
        await sleep(1);
        child.info('in run');
        child.info('own field wins', { run_id: 'run-2' });
      });
      setImmediate(() => logger.info('started inside, later'));
      await sleep(5);
    });
    logger.info('outside');
    const lines = json();
    const by = (message: string) => lines.find((line) => line.message === message)!;
    assert.equal(by('in request').request_id, 'req-1');
    assert.equal(by('in request').run_id, undefined);
    assert.deepEqual(
      [by('in run').request_id, by('in run').run_id, by('in run').account_id, by('in run').agent],
      ['req-1', 'run-1', 'acct-1', 'echo'],
    );
    assert.equal(by('own field wins').run_id, 'run-2');
    assert.equal(by('started inside, later').request_id, 'req-1');
    assert.equal(by('outside').request_id, undefined);
  });

  it('keeps the fields of two concurrent contexts apart', async () => {
    const { logger, json } = capture();
    await Promise.all(
      ['a', 'b'].map((id) =>
        logger.withContext({ run_id: id }, async () => {
          await sleep(id === 'a' ? 5 : 1);
          logger.info(`run ${id}`);
        }),
      ),
    );
    assert.deepEqual(
      json()
        .map((line) => [line.message, line.run_id])
        .sort(),
      [
        ['run a', 'a'],
        ['run b', 'b'],
      ],
    );
  });
});

describe('createLogger (pretty)', () => {
  it('writes lines for people: time, level, message, key=value, the error’s stack and causes below', () => {
    const { logger, lines } = capture('debug', { format: 'pretty' });
    const cause = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    logger.warn('run finished', { status: 'failed', note: 'two words', error: new Error('agent broke', { cause }) });
    const text = lines();
    assert.throws(() => JSON.parse(text[0]!));
    assert.match(text[0]!, /^\d\d:\d\d:\d\d\.\d{3} WARN {2}run finished status=failed note="two words"$/);
    assert.equal(text[1], '    error: agent broke');
    assert.match(text[2]!, /^ {8}at /);
    assert.equal(text.at(-1), '    caused by: connect ECONNREFUSED 127.0.0.1:1 (ECONNREFUSED)');
    assert.doesNotMatch(text.join('\n'), /\x1b\[/);
  });

  it('writes odd fields without throwing: a cycle, a BigInt, an object', () => {
    const { logger, lines } = capture('debug', { format: 'pretty' });
    class Loop {
      readonly self = this;
    }
    logger.info('odd', { loop: new Loop(), big: 2n, limits: { A: 1 } });
    assert.match(lines()[0]!, /odd loop=\S+ big=2 limits=\{"A":1\}$/);
  });

  it('colours the level only when asked (a TTY)', () => {
    const { logger, lines } = capture('debug', { format: 'pretty', colors: true });
    logger.error('boom');
    assert.match(lines()[0]!, /\x1b\[31mERROR/);
  });
});
