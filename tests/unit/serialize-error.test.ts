import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DatabaseError } from '../../src/db/database-error.js';
import { DependencyUnavailableError } from '../../src/domain/index.js';
import { ProviderError } from '../../src/llm/errors.js';
import { errorChain, serializeError, serializeValue } from '../../src/observability/serialize-error.js';

describe('serializeError', () => {
  it('keeps message, name, code and stack, which JSON.stringify of an Error drops', () => {
    const error = Object.assign(new TypeError('bad thing'), { code: 'E_BAD' });
    assert.equal(JSON.stringify(error), '{"code":"E_BAD"}');
    const out = serializeError(error);
    assert.equal(out.name, 'TypeError');
    assert.equal(out.message, 'bad thing');
    assert.equal(out.code, 'E_BAD');
    assert.match(out.stack ?? '', /^TypeError: bad thing\n\s+at /);
  });

  it('follows causes recursively, Errors or not', () => {
    const root = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED', syscall: 'connect', port: 1 });
    const middle = new DependencyUnavailableError('database', root);
    const top = new Error('cannot start', { cause: middle });
    const out = serializeError(top) as any;
    assert.equal(out.cause.name, 'DependencyUnavailableError');
    assert.equal(out.cause.code, 'dependency_unavailable');
    assert.equal(out.cause.cause.message, 'connect ECONNREFUSED 127.0.0.1:1');
    assert.equal(out.cause.cause.code, 'ECONNREFUSED');
    assert.equal(out.cause.cause.syscall, 'connect');
    assert.equal(out.cause.cause.port, 1);
    assert.deepEqual(serializeError(new Error('x', { cause: 'a string' })).cause, 'a string');
    assert.deepEqual(serializeError(new Error('x', { cause: { code: 42 } })).cause, { code: 42 });
  });

  it('cuts cycles and bounds the depth of a cause chain', () => {
    const a = new Error('a');
    const b = new Error('b', { cause: a });
    a.cause = b;
    const out = serializeError(a) as any;
    assert.equal(out.cause.message, 'b');
    assert.equal(out.cause.cause, '[Circular]');
    assert.equal((serializeError(Object.assign(new Error('self'), { cause: undefined })) as any).cause, undefined);

    let deep = new Error('level 0');
    for (let level = 1; level < 50; level += 1) deep = new Error(`level ${level}`, { cause: deep });
    let depth = 0;
    for (let node: any = serializeError(deep); typeof node === 'object' && node !== null; node = node.cause) depth += 1;
    assert.ok(depth > 3 && depth < 10, `depth ${depth}`);
    assert.doesNotThrow(() => JSON.stringify(serializeError(deep)));
  });

  it('keeps an AggregateError’s errors (connecting to every address failed)', () => {
    const aggregate = new AggregateError([Object.assign(new Error('connect ECONNREFUSED ::1:1'), { code: 'ECONNREFUSED' })], '');
    const out = serializeError(aggregate) as any;
    assert.equal(out.name, 'AggregateError');
    assert.equal(out.errors[0].code, 'ECONNREFUSED');
    assert.match(errorChain(aggregate), /ECONNREFUSED ::1:1/);
  });

  it('copies only the fields that hold no data: never a query, its parameters, a detail or a body', () => {
    const driver = Object.assign(new Error('insert failed'), {
      code: '23514',
      query: 'insert into runs values ($1)',
      parameters: ['SECRET-PARAM'],
      detail: 'Failing row contains (SECRET-ROW)',
      body: 'SECRET-BODY',
      constraint: 'refuse_admission',
    });
    const text = JSON.stringify(serializeError(driver));
    assert.doesNotMatch(text, /SECRET|insert into/);
    assert.match(text, /"constraint":"refuse_admission"/);
    const database = new DatabaseError('new row violates check constraint "…"', { code: '23514', table: 'runs' });
    assert.equal(serializeError(database).table, 'runs');
  });

  it('shows an error’s logMessage instead of a message that quotes a provider (in the stack too)', () => {
    const error = new ProviderError('mock', 'answered 400: you said SECRET-USER-TEXT', { status: 400, logDetail: 'answered 400' });
    const out = serializeError(error);
    assert.equal(out.message, 'Provider "mock" answered 400.');
    assert.equal(out.status, 400);
    assert.equal(out.provider, 'mock');
    assert.doesNotMatch(JSON.stringify(out), /SECRET/);
    assert.match(out.stack ?? '', /^ProviderError: Provider "mock" answered 400\.\n\s+at /);
  });
});

describe('serializeValue', () => {
  it('serializes Errors nested anywhere in log fields, and leaves the rest as it is', () => {
    const when = new Date(0);
    const fields = { error: new Error('top'), nested: { list: [1, { error: new RangeError('deep') }] }, when, count: 3 };
    const out = serializeValue(fields) as any;
    assert.equal(out.error.message, 'top');
    assert.equal(out.nested.list[1].error.name, 'RangeError');
    assert.equal(out.nested.list[1].error.message, 'deep');
    assert.equal(out.when, when);
    assert.equal(out.count, 3);
    assert.notEqual(JSON.stringify(out), JSON.stringify({ ...fields, error: {} }));
  });

  it('bounds a long array, saying how many entries it left out', () => {
    const out = serializeValue(Array.from({ length: 150 }, (_, i) => i)) as unknown[];
    assert.equal(out.length, 101);
    assert.equal(out.at(-1), '…and 50 more');
  });

  it('takes thrown values that are not Errors as they are', () => {
    for (const thrown of ['a string', 42, null, undefined, { code: 'X', message: 'not an Error' }]) {
      assert.deepEqual(serializeValue({ error: thrown }), { error: thrown });
    }
    const cyclic: Record<string, unknown> = { name: 'loop' };
    cyclic.self = cyclic;
    assert.deepEqual(serializeValue(cyclic), { name: 'loop', self: '[Circular]' });
  });
});

describe('errorChain', () => {
  it('is the message, then one line per cause', () => {
    const chain = errorChain(
      new Error('cannot connect to the database at 127.0.0.1:1', {
        cause: new DatabaseError('connect ECONNREFUSED', { code: 'ECONNREFUSED' }),
      }),
    );
    assert.equal(chain, 'cannot connect to the database at 127.0.0.1:1\n  caused by: DatabaseError: connect ECONNREFUSED (ECONNREFUSED)');
    assert.equal(errorChain('thrown text'), 'thrown text');
  });
});
