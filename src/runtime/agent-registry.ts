import { z } from 'zod';
import { type Agent, InvalidRequestError, UnknownAgentError } from '../domain/index.js';
import { dottedPath, firstIssue } from '../lib/zod-issue.js';

export interface AgentDescription {
  readonly name: string;
  readonly description: string;
  readonly input_schema: unknown;
}

/** The agents this instance can run, by name. */
export class AgentRegistry {
  private readonly agents = new Map<string, Agent>();

  constructor(agents: ReadonlyArray<Agent<unknown>>) {
    for (const agent of agents) {
      if (this.agents.has(agent.name)) throw new Error(`agent "${agent.name}" is registered twice`);
      this.agents.set(agent.name, agent);
    }
  }

  /** The agent, or UnknownAgentError. */
  get(name: string): Agent {
    const agent = this.agents.get(name);
    if (agent === undefined) throw new UnknownAgentError(name);
    return agent;
  }

  /** Validates a run's input for its agent; throws InvalidRequestError naming the field. */
  parseInput(agent: Agent, input: unknown): unknown {
    const result = agent.inputSchema.safeParse(input);
    if (result.success) return result.data;
    const { path, message } = firstIssue(result.error);
    const field = dottedPath(['input', ...path]);
    throw new InvalidRequestError(`${field}: ${message}`, field);
  }

  describe(): AgentDescription[] {
    return [...this.agents.values()].map((agent) => ({
      name: agent.name,
      description: agent.description,
      input_schema: z.toJSONSchema(agent.inputSchema, { io: 'input', unrepresentable: 'any' }),
    }));
  }
}
