import type { Command } from 'commander';
import { isFinalStatus } from '../../client/index.js';
import { action, printJson } from '../action.js';
import { clientFor } from '../connection.js';
import { EXIT } from '../exit-codes.js';
import type { Terminal } from '../terminal.js';

/** `agentd cancel <id>`. */
export function registerCancel(program: Command, terminal: Terminal): void {
  program
    .command('cancel')
    .description('cancel a run (it stops within a second and ends cancelled); a finished run keeps its status')
    .argument('<id>', 'the run id')
    .option('--json', 'print the answer as JSON')
    .action(
      action<{ json?: boolean }, [string]>(terminal, async ({ options, command }, id) => {
        const result = await clientFor(command, 'apiKey').cancel(id);
        if (options.json === true) printJson(terminal, result);
        else if (isFinalStatus(result.status) && result.status !== 'cancelled')
          terminal.stdout.write(`run ${id} had already ended: ${result.status}\n`);
        else terminal.stdout.write(`run ${id} ${result.status === 'cancelled' ? 'cancelled' : `cancelling (${result.status})`}\n`);
        return EXIT.ok;
      }),
    );
}
