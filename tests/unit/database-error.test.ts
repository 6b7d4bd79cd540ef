import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { inspect } from 'node:util';
import { DatabaseError, redactQuoted, toDatabaseError } from '../../src/db/database-error.js';

describe('redactQuoted', () => {
  it('keeps a message without quotes', () => {
    assert.equal(redactQuoted('value too long for type character varying(200)'), 'value too long for type character varying(200)');
  });

  it('removes everything from the first quote to the last, quotes inside values included', () => {
    assert.equal(redactQuoted('invalid input syntax for type integer: "secret"'), 'invalid input syntax for type integer: "…"');
    assert.equal(redactQuoted('invalid input syntax for type uuid: "a"secret"b"'), 'invalid input syntax for type uuid: "…"');
    assert.equal(redactQuoted('value "secret" is out of range for type integer'), 'value "…" is out of range for type integer');
    assert.equal(redactQuoted(`unterminated "secret`), 'unterminated "…"');
    assert.equal(redactQuoted(`it's "secret"`), 'it"…"');
  });
});

describe('toDatabaseError', () => {
  it('keeps the SQLSTATE and the names of schema objects, and drops the data', () => {
    const driverError = Object.assign(new Error('new row for relation "runs" violates check constraint "x"'), {
      code: '23514',
      severity: 'ERROR',
      detail: 'Failing row contains (secret).',
      where: 'JSON data, line 1: secret',
      hint: 'secret',
      query: 'insert … secret',
      params: ['secret'],
      table: 'runs',
      constraint_name: 'x',
      routine: 'ExecConstraints',
    });
    Object.defineProperty(driverError, 'parameters', { value: ['secret'], enumerable: false });
    const error = toDatabaseError(driverError);
    assert.ok(error instanceof DatabaseError);
    assert.equal(error.code, '23514');
    assert.equal(error.table, 'runs');
    assert.equal(error.constraint, 'x');
    assert.equal(error.routine, 'ExecConstraints');
    assert.equal(error.cause, undefined);
    assert.ok(!inspect(error, { showHidden: true, depth: null }).includes('secret'));
    assert.ok(!JSON.stringify(error).includes('secret'));
    assert.equal(toDatabaseError(error), error, 'a DatabaseError is returned as it is');
  });

  it('turns a throw that is not an Error into a DatabaseError too', () => {
    const error = toDatabaseError('secret');
    assert.equal(error.message, 'the database failed');
    assert.equal(error.code, undefined);
  });
});
