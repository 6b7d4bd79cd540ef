import { type Command, InvalidArgumentError } from 'commander';
import type { CreateRunRequest } from '../../client/index.js';
import { action, printJson } from '../action.js';
import { clientFor } from '../connection.js';
import { type EventPrinter, jsonPrinter, TextPrinter } from '../event-printer.js';
import { EXIT, exitCodeOf } from '../exit-codes.js';
import { follow, withInterrupts } from '../follow.js';
import type { Terminal } from '../terminal.js';

interface RunOptions {
  readonly input?: unknown;
  readonly session?: string;
  readonly model?: string;
  readonly timeoutMs?: number;
  readonly metadata?: Record<string, unknown>;
  readonly idempotencyKey?: string;
  readonly detach?: boolean;
  readonly json?: boolean;
}

/** Exit codes of commands that follow a run, for their help. */
export const EXIT_CODES_HELP = `
Exit codes: 0 completed, 3 failed, 4 cancelled, 5 timed_out, 6 interrupted,
1 agentd answered an error or could not be reached, 2 bad usage, 130 Ctrl-C.`;

/** A commander parser of a JSON option value. */
export function jsonValue(flag: string): (text: string) => unknown {
  return (text) => {
    try {
      return JSON.parse(text) as unknown;
    } catch (error) {
      throw new InvalidArgumentError(`${flag} must be JSON, quoted for the shell (--input '{"events": 3}'): ${(error as Error).message}`);
    }
  };
}

function jsonObject(flag: string): (text: string) => unknown {
  const parse = jsonValue(flag);
  return (text) => {
    const value = parse(text);
    if (value === null || typeof value !== 'object' || Array.isArray(value))
      throw new InvalidArgumentError(`${flag} must be a JSON object.`);
    return value;
  };
}

function positiveInt(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1) throw new InvalidArgumentError('must be a whole number of at least 1.');
  return Number(text);
}

/** `agentd run <agent>`: starts a run and streams its events to the end. */
export function registerRun(program: Command, terminal: Terminal): void {
  program
    .command('run')
    .description('start a run and stream its events until it ends (Ctrl-C cancels it); exits 0 only if it completed')
    .argument('<agent>', 'the agent to run (agentd agents lists them)')
    .option('-i, --input <json>', "the run's input, as JSON", jsonValue('--input'))
    .option('--session <id>', 'session id (runs of a session are limited by SESSION_MAX_INFLIGHT)')
    .option('--model <model>', 'the model, for agents that call an LLM')
    .option('--timeout-ms <ms>', 'timeout from the start of running, in ms', positiveInt)
    .option('--metadata <json>', 'metadata, a JSON object', jsonObject('--metadata'))
    .option('--idempotency-key <key>', 'Idempotency-Key (default: a new one, so retries do not start a second run)')
    .option('-d, --detach', 'print the run id and exit at once, without following')
    .option('--json', 'events as JSON lines on stdout (with --detach: the run as JSON)')
    .addHelpText('after', EXIT_CODES_HELP)
    .action(
      action<RunOptions, [string]>(terminal, async ({ options, command }, agent) => {
        const client = clientFor(command, 'apiKey');
        const request: CreateRunRequest = {
          agent,
          input: options.input ?? null,
          ...(options.session === undefined ? {} : { session_id: options.session }),
          ...(options.model === undefined ? {} : { model: options.model }),
          ...(options.timeoutMs === undefined ? {} : { timeout_ms: options.timeoutMs }),
          ...(options.metadata === undefined ? {} : { metadata: options.metadata }),
        };
        // Ctrl-C from the start: one that comes while the run is being created cancels it once it exists.
        let cancel: () => void = () => (cancelEarly = true);
        let cancelEarly = false;
        const status = await withInterrupts(
          async (signal) => {
            const run = await client.createRun(request, { idempotencyKey: options.idempotencyKey, signal });
            if (options.detach === true) {
              if (options.json === true) printJson(terminal, run);
              else terminal.stdout.write(`${run.id}\n`);
              return 'detached' as const;
            }
            const printer: EventPrinter =
              options.json === true ? jsonPrinter(terminal) : new TextPrinter(terminal, run.id, ' · Ctrl-C cancels');
            cancel = () => {
              printer.note(`cancelling run ${run.id} (Ctrl-C again stops following)`);
              client.cancel(run.id).catch((error: unknown) => printer.note(`could not cancel: ${(error as Error).message}`));
            };
            if (cancelEarly) cancel();
            return follow(client, run.id, printer, { signal });
          },
          () => cancel(),
        );
        if (status === 'detached') return EXIT.ok;
        return status === null ? EXIT.error : exitCodeOf(status);
      }),
    );
}
