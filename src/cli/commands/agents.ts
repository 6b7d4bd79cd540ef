import type { Command } from 'commander';
import { action, printJson } from '../action.js';
import { clientFor } from '../connection.js';
import { EXIT } from '../exit-codes.js';
import { table, type Terminal } from '../terminal.js';

/** `agentd agents`: the agents this agentd runs. */
export function registerAgents(program: Command, terminal: Terminal): void {
  program
    .command('agents')
    .description('list the agents this agentd runs')
    .option('--json', 'print them with their input JSON Schemas as JSON')
    .action(
      action<{ json?: boolean }>(terminal, async ({ options, command }) => {
        const agents = await clientFor(command, 'apiKey').listAgents();
        if (options.json === true) printJson(terminal, agents);
        else terminal.stdout.write(table([['AGENT', 'DESCRIPTION'], ...agents.map((a) => [a.name, a.description])], terminal.style.bold));
        return EXIT.ok;
      }),
    );
}
