import type { z } from 'zod';
import type { Agent, AgentContext } from '../domain/index.js';

/** What an agent's name may look like: it is the `agent` of POST /v1/runs. */
export const AGENT_NAME_PATTERN = /^[a-z][a-z0-9_-]{0,63}$/;

/** Marks what defineAgent made, across copies of this module (a built package and its sources). */
const DEFINED = Symbol.for('agentd.agent');

/** An agent as written: its input is a zod schema; `run` gets the parsed input as `ctx.input`. */
export interface AgentDefinition<S extends z.ZodType> {
  readonly name: string;
  readonly description: string;
  /** Validates (and may default) the run's `input`; its JSON Schema is published by GET /v1/agents. */
  readonly input: S;
  run(ctx: AgentContext<z.output<S>>): Promise<void>;
}

/** An agent defineAgent made. */
export type DefinedAgent<I = unknown> = Agent<I> & { readonly [DEFINED]: true };

/**
 * Makes an agent that agentd can run: from AGENTS_DIR or `createRuntime({ agents })`.
 * Throws a TypeError naming what is wrong with the definition.
 *
 *     export default defineAgent({ name: 'hello', description: '…', input: z.object({ name: z.string() }), async run(ctx) { … } });
 */
export function defineAgent<S extends z.ZodType>(definition: AgentDefinition<S>): DefinedAgent<z.output<S>> {
  const problem = definitionProblem(definition);
  if (problem !== null) throw new TypeError(`defineAgent: ${problem}`);
  const { name, description, input, run } = definition;
  return Object.freeze({ name, description, inputSchema: input as z.ZodType<z.output<S>>, run, [DEFINED]: true as const });
}

/** Whether `value` is an agent defineAgent made. */
export function isDefinedAgent(value: unknown): value is DefinedAgent {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[DEFINED] === true;
}

/** What is wrong with an agent definition, or null. */
export function definitionProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null) return `an agent definition must be an object, got ${typeOf(value)}`;
  const { name, description, input, run } = value as Record<string, unknown>;
  if (typeof name !== 'string' || !AGENT_NAME_PATTERN.test(name)) {
    return `name must match ${AGENT_NAME_PATTERN.source}, got ${typeof name === 'string' ? JSON.stringify(name) : typeOf(name)}`;
  }
  if (typeof description !== 'string' || description.trim() === '') return `agent "${name}": description must be a non-empty string`;
  if (typeof (input as { safeParse?: unknown } | null)?.safeParse !== 'function') return `agent "${name}": input must be a zod schema`;
  if (typeof run !== 'function') return `agent "${name}": run must be a function`;
  return null;
}

function typeOf(value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value;
}
