import type { Command } from 'commander';
import type { Terminal } from './terminal.js';

/** What every command gets: where to write, and its parsed options and command (for the global ones). */
export interface CommandContext<O> {
  readonly terminal: Terminal;
  readonly options: O;
  readonly command: Command;
}

/**
 * A commander action from a function that resolves with the exit code; its errors go to the
 * program's handler (main.ts), which prints them and picks the exit code.
 */
export function action<O, A extends string[] = []>(
  terminal: Terminal,
  body: (context: CommandContext<O>, ...args: A) => Promise<number>,
): (...args: unknown[]) => Promise<void> {
  return async (...args) => {
    const command = args.at(-1) as Command;
    const options = args.at(-2) as O;
    const positional = args.slice(0, -2) as A;
    process.exitCode = await body({ terminal, options, command }, ...positional);
  };
}

/** Writes a value as indented JSON, for `--json`. */
export function printJson(terminal: Terminal, value: unknown): void {
  terminal.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
