import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { defineAgent, isDefinedAgent } from '../../src/index.js';
import { AgentRegistry } from '../../src/runtime/agent-registry.js';

const valid = { name: 'hello', description: 'Greets.', input: z.object({ name: z.string() }), run: async () => undefined };

describe('defineAgent', () => {
  it('makes an agent the registry validates input for and describes', () => {
    const agent = defineAgent(valid);
    assert.ok(isDefinedAgent(agent));
    assert.ok(Object.isFrozen(agent));
    const registry = new AgentRegistry([agent]);
    assert.deepEqual(registry.parseInput(registry.get('hello'), { name: 'Ada' }), { name: 'Ada' });
    assert.throws(() => registry.parseInput(agent, { name: 3 }), { code: 'invalid_request', message: /^input.name: / });
    assert.equal(registry.describe()[0]?.description, 'Greets.');
  });

  it('refuses a definition that is not one, saying what is wrong', () => {
    const cases: Array<[unknown, RegExp]> = [
      [null, /must be an object, got null/],
      [{ ...valid, name: 'Hello World' }, /name must match/],
      [{ ...valid, name: 7 }, /name must match .*got number/],
      [{ ...valid, description: ' ' }, /agent "hello": description must be a non-empty string/],
      [{ ...valid, input: { type: 'object' } }, /agent "hello": input must be a zod schema/],
      [{ ...valid, run: 'go' }, /agent "hello": run must be a function/],
    ];
    for (const [definition, message] of cases) {
      assert.throws(() => defineAgent(definition as typeof valid), { name: 'TypeError', message });
    }
  });

  it('tells agents from look-alikes', () => {
    assert.equal(isDefinedAgent({ ...valid, inputSchema: valid.input }), false);
    assert.equal(isDefinedAgent(undefined), false);
  });
});
