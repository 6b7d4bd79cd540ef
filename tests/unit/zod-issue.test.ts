import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { dottedPath, firstIssue, issuePhrase } from '../../src/lib/zod-issue.js';

const schema = z.array(z.object({ name: z.string(), tags: z.array(z.string()) }));

function errorOf(value: unknown, on: z.ZodType = schema): z.ZodError {
  const result = on.safeParse(value);
  assert.equal(result.success, false);
  return result.error as z.ZodError;
}

describe('zod issues', () => {
  it('gives the first issue only, with its path and message', () => {
    const { path, message } = firstIssue(errorOf([{ name: 1, tags: [2] }]));
    assert.deepEqual(path, [0, 'name']);
    assert.equal(typeof message, 'string');
    assert.notEqual(message, '');
  });

  it('says "is invalid" when the error holds no issue', () => {
    assert.deepEqual(firstIssue(new z.ZodError([])), { path: [], message: 'is invalid' });
  });

  it('writes a path dotted, as API error fields name it', () => {
    assert.equal(dottedPath(firstIssue(errorOf([{ name: 'a', tags: ['b', 3] }])).path), '0.tags.1');
    assert.equal(dottedPath(['input', 'messages', 0, 'role']), 'input.messages.0.role');
    assert.equal(dottedPath([]), '');
  });

  it('phrases the issue as its JavaScript path and message, or the message alone at the root', () => {
    const custom = z.object({ base_url: z.string().min(3, 'must be a URL') }).array();
    assert.equal(issuePhrase(errorOf([{ base_url: 'x' }], custom)), '[0].base_url must be a URL');
    assert.match(issuePhrase(errorOf([{ name: 'a', tags: ['b', 3] }])), /^\[0\]\.tags\[1\] \S/);
    assert.equal(issuePhrase(errorOf('x', z.string().min(3, 'is too short'))), 'is too short');
    assert.match(issuePhrase(errorOf({ match: { agent: 1 } }, z.object({ match: z.object({ agent: z.string() }) }))), /^match\.agent \S/);
  });
});
