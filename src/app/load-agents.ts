import { readdir } from 'node:fs/promises';
import { extname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isDefinedAgent } from '../agents/define-agent.js';
import type { Agent } from '../domain/index.js';
import { inSingleExecutable } from '../lib/embedded-assets.js';

/** A file of AGENTS_DIR that could not give its agents; start-up stops with it. */
export class AgentModuleError extends Error {
  readonly code = 'agent_module_invalid';

  constructor(
    readonly path: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`${path}: ${detail}`, options);
    this.name = 'AgentModuleError';
  }
}

const MODULE_EXTENSIONS = new Set(['.js', '.mjs']);

/**
 * Refuses AGENTS_DIR in the single executable, before start-up opens anything: an agent module
 * imports `agentd` (defineAgent, z) and its own packages from disk, where the executable has
 * none of them.
 */
export function refuseAgentsDirInSingleExecutable(dir: string | undefined): void {
  if (dir === undefined || !inSingleExecutable()) return;
  throw new AgentModuleError(
    resolve(dir),
    'AGENTS_DIR is not supported by the single executable: agent modules import `agentd` and their packages from disk. ' +
      'Run agentd from its npm package (`npm start`, `node dist/main.js` or createRuntime) to load your own agents.',
  );
}

/**
 * The agents of AGENTS_DIR: every `.js` / `.mjs` file directly in it (not in subfolders, where
 * helpers and offloaded modules live) is imported, and each of its exports must be an agent made
 * with defineAgent. Throws AgentModuleError naming the file for a module that fails to load, an
 * export that is not an agent, or an empty module; in name order, so errors are reproducible.
 */
export async function loadAgentsDir(dir: string, builtIn: readonly string[] = []): Promise<Agent[]> {
  const root = resolve(dir);
  let entries;
  try {
    entries = await readdir(root, { withFileTypes: true });
  } catch (error) {
    throw new AgentModuleError(root, `AGENTS_DIR cannot be read: ${(error as Error).message}`, { cause: error });
  }
  const files = entries
    .filter((entry) => entry.isFile() && MODULE_EXTENSIONS.has(extname(entry.name)))
    .map((entry) => join(root, entry.name))
    .sort();
  const agents: Agent[] = [];
  const defined = new Map(builtIn.map((name) => [name, 'a built-in agent']));
  for (const file of files) {
    for (const agent of await agentsOf(file)) {
      const other = defined.get(agent.name);
      if (other !== undefined) throw new AgentModuleError(file, `agent "${agent.name}" is already defined by ${other}`);
      defined.set(agent.name, file);
      agents.push(agent);
    }
  }
  return agents;
}

async function agentsOf(file: string): Promise<Agent[]> {
  let loaded: Record<string, unknown>;
  try {
    loaded = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (error) {
    throw new AgentModuleError(file, `the module failed to load: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
    });
  }
  const exports = Object.entries(loaded);
  if (exports.length === 0) throw new AgentModuleError(file, 'the module exports nothing; export an agent made with defineAgent');
  const agents: Agent[] = [];
  for (const [name, value] of exports) {
    // A module may export the same agent as default and by name.
    if (agents.includes(value as Agent)) continue;
    if (!isDefinedAgent(value)) {
      throw new AgentModuleError(file, `export "${name}" is not an agent made with defineAgent (helpers belong in a subfolder)`);
    }
    agents.push(value);
  }
  return agents;
}
