import { Command } from 'commander';
import { registerAccounts } from './commands/accounts.js';
import { registerAgents } from './commands/agents.js';
import { registerCancel } from './commands/cancel.js';
import { registerCapacity } from './commands/capacity.js';
import { registerConfig } from './commands/config-check.js';
import { registerRun } from './commands/run.js';
import { registerRuns } from './commands/runs.js';
import { registerServe } from './commands/serve.js';
import { connectionOptions } from './connection.js';
import type { Terminal } from './terminal.js';

/**
 * The `agentd` command line. Settings go on the program before any command is added: commander
 * copies them to each command it creates. Errors of commander itself (a bad flag, a missing
 * argument) throw a CommanderError, which main.ts turns into the exit code.
 */
export function buildProgram(terminal: Terminal, version: string): Command {
  const program = new Command('agentd')
    .description('agentd: run the server, or talk to one (runs, events, accounts, capacity)')
    .version(version, '-V, --version')
    .exitOverride()
    .showHelpAfterError('(add --help for usage)')
    .configureHelp({ showGlobalOptions: true })
    .configureOutput({ writeOut: (text) => terminal.stdout.write(text), writeErr: (text) => terminal.stderr.write(text) });
  for (const option of connectionOptions()) program.addOption(option);
  program.addHelpText(
    'after',
    `
Connection flags may also come after the command; the variables AGENTD_URL, AGENTD_API_KEY
and AGENTD_ADMIN_TOKEN set them too. Examples:
  agentd serve
  agentd accounts create --name acme --tier pro
  agentd run echo --input '"hello"'
  agentd runs tail <run id>`,
  );
  registerServe(program, terminal);
  registerAccounts(program, terminal);
  registerRun(program, terminal);
  registerRuns(program, terminal);
  registerCancel(program, terminal);
  registerAgents(program, terminal);
  registerCapacity(program, terminal);
  registerConfig(program, terminal);
  return program;
}
