import type { Command } from 'commander';
import { action, printJson } from '../action.js';
import { clientFor } from '../connection.js';
import { EXIT } from '../exit-codes.js';
import { table, type Terminal } from '../terminal.js';

interface CreateOptions {
  readonly name: string;
  readonly tier: string;
  readonly json?: boolean;
  readonly quiet?: boolean;
}

/** `agentd accounts create`: an account and its API key (admin token). */
export function registerAccounts(program: Command, terminal: Terminal): void {
  const accounts = program.command('accounts').description('manage accounts (needs the admin token)');
  accounts
    .command('create')
    .description('create an account and print its API key, which is shown this once')
    .requiredOption('--name <name>', 'the account name')
    .option('--tier <tier>', 'its tier, one of TIER_LIMITS', 'free')
    .option('--json', 'print the account and key as JSON')
    .option('-q, --quiet', 'print only the API key, e.g. for export AGENTD_API_KEY=$(agentd accounts create ... -q)')
    .action(
      action<CreateOptions>(terminal, async ({ options, command }) => {
        const account = await clientFor(command, 'adminToken').admin.createAccount({ name: options.name, tier: options.tier });
        if (options.json === true) printJson(terminal, account);
        else if (options.quiet === true) terminal.stdout.write(`${account.api_key}\n`);
        else {
          terminal.stdout.write(
            table([
              ['account', `${account.name} (${account.tier})`],
              ['id', account.id],
              ['api key', account.api_key],
              ['key prefix', account.key_prefix],
            ]),
          );
          terminal.stderr.write(terminal.style.yellow('The API key is shown this once: store it now (agentd keeps only its hash).\n'));
        }
        return EXIT.ok;
      }),
    );
}
