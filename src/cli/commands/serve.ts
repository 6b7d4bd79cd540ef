import type { Command } from 'commander';
import type { Terminal } from '../terminal.js';

/** `agentd serve`: the server, started by the same entry point as `node dist/main.js`. */
export function registerServe(program: Command, _terminal: Terminal): void {
  program
    .command('serve')
    .description('start the server, exactly as `node dist/main.js` (WORKERS > 1 forks workers, which run this same command)')
    .addHelpText(
      'after',
      `
Configured by environment variables only (.env.example lists them with their defaults);
\`agentd config check\` shows what they resolve to. SIGTERM or Ctrl-C drains and stops.`,
    )
    .action(async () => {
      // The entry point runs itself when loaded, and owns the process from here: its exit codes,
      // its signals, and in a cluster the workers, which node:cluster starts with this same
      // command line (so they come through here too, and main.js makes them workers).
      await import('../../main.js');
    });
}
