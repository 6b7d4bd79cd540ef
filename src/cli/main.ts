#!/usr/bin/env node
import { CommanderError } from 'commander';
import { AgentdError } from '../client/index.js';
import { packageVersion } from '../lib/embedded-assets.js';
import { EXIT, UsageError } from './exit-codes.js';
import { Interrupted } from './follow.js';
import { buildProgram } from './program.js';
import { processTerminal, type Terminal } from './terminal.js';

/** A hint for the codes a person at the terminal can act on. */
function hint(error: AgentdError): string {
  switch (error.code) {
    case 'unauthorized':
      return ' Check AGENTD_API_KEY (or AGENTD_ADMIN_TOKEN for admin commands).';
    case 'connection_failed':
      return ' Is agentd running there? Set AGENTD_URL or pass --url.';
    default:
      return '';
  }
}

/** An error of a command as a line on stderr and an exit code. */
function exitCodeFor(error: unknown, terminal: Terminal): number {
  if (error instanceof CommanderError) {
    // Help and version exit 0; commander has already written its message for the rest.
    return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
  }
  if (error instanceof Interrupted) return EXIT.sigint;
  if (error instanceof UsageError) {
    terminal.stderr.write(`agentd: ${error.message}\n`);
    return EXIT.usage;
  }
  if (error instanceof AgentdError) {
    const status = error.status === null ? '' : ` (${error.status})`;
    terminal.stderr.write(`agentd: ${error.message} [${error.code}${status}]${hint(error)}\n`);
    return EXIT.error;
  }
  terminal.stderr.write(`agentd: ${error instanceof Error ? error.message : String(error)}\n`);
  return EXIT.error;
}

/** Runs the command line; no top-level await, so the single executable's CommonJS bundle can hold it. */
async function main(): Promise<void> {
  const terminal = processTerminal((process.env.NO_COLOR ?? '') !== '');
  try {
    await buildProgram(terminal, packageVersion(import.meta.url)).parseAsync(process.argv);
  } catch (error) {
    process.exitCode = exitCodeFor(error, terminal);
  }
}

void main();
