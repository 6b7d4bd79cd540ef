import { type Command, InvalidArgumentError, Option } from 'commander';
import type { Run, RunStatus } from '../../client/index.js';
import { RUN_STATUSES } from '../../domain/index.js';
import { action, printJson } from '../action.js';
import { clientFor } from '../connection.js';
import { type EventPrinter, jsonPrinter, TextPrinter } from '../event-printer.js';
import { EXIT, exitCodeOf } from '../exit-codes.js';
import { follow, withInterrupts } from '../follow.js';
import { table, type Terminal } from '../terminal.js';
import { EXIT_CODES_HELP } from './run.js';

interface ListOptions {
  readonly status?: RunStatus;
  readonly agent?: string;
  readonly session?: string;
  readonly limit: number;
  readonly all?: boolean;
  readonly json?: boolean;
}

function count(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1) throw new InvalidArgumentError('must be a whole number of at least 1.');
  return Number(text);
}

function eventId(text: string): string {
  if (!/^\d{1,15}-\d{1,9}$/.test(text)) throw new InvalidArgumentError('must be an event id like 1700000000000-0.');
  return text;
}

/** Seconds from start to finish (or now), for the list. */
function duration(run: Run): string {
  if (run.started_at === null) return '-';
  const end = run.finished_at === null ? Date.now() : Date.parse(run.finished_at);
  return `${((end - Date.parse(run.started_at)) / 1000).toFixed(1)}s`;
}

async function listRuns(terminal: Terminal, options: ListOptions, command: Command): Promise<number> {
  const client = clientFor(command, 'apiKey');
  const runs: Run[] = [];
  const pageSize = options.all === true ? 200 : Math.min(options.limit, 200);
  for await (const run of client.listRuns({ status: options.status, agent: options.agent, session_id: options.session, limit: pageSize })) {
    runs.push(run);
    if (options.all !== true && runs.length >= options.limit) break;
  }
  if (options.json === true) printJson(terminal, runs);
  else if (runs.length === 0) terminal.stderr.write('no runs\n');
  else {
    const rows = runs.map((run) => [run.id, run.status, run.agent, run.created_at, duration(run), run.error?.code ?? '']);
    terminal.stdout.write(table([['ID', 'STATUS', 'AGENT', 'CREATED', 'TIME', 'ERROR'], ...rows], terminal.style.bold));
  }
  return EXIT.ok;
}

/** `agentd runs list | get | tail`. */
export function registerRuns(program: Command, terminal: Terminal): void {
  const runs = program.command('runs').description("the account's runs");
  runs
    .command('list')
    .description('list runs, newest first')
    .addOption(new Option('--status <status>', 'only runs in this status').choices(RUN_STATUSES))
    .option('--agent <agent>', 'only runs of this agent')
    .option('--session <id>', 'only runs of this session')
    .option('-n, --limit <count>', 'show at most this many', count, 20)
    .option('--all', 'show every run (page by page)')
    .option('--json', 'print the runs as a JSON array')
    .action(action<ListOptions>(terminal, ({ options, command }) => listRuns(terminal, options, command)));

  runs
    .command('get')
    .description('show one run (its status, error, output) as JSON')
    .argument('<id>', 'the run id')
    .action(
      action<object, [string]>(terminal, async ({ command }, id) => {
        printJson(terminal, await clientFor(command, 'apiKey').getRun(id));
        return EXIT.ok;
      }),
    );

  runs
    .command('tail')
    .description("follow a run's events from the first (or after --after) to its end, resuming across dropped connections")
    .argument('<id>', 'the run id')
    .option('--after <event-id>', 'start after this event id', eventId)
    .option('--json', 'events as JSON lines on stdout')
    .addHelpText('after', EXIT_CODES_HELP)
    .action(
      action<{ after?: string; json?: boolean }, [string]>(terminal, async ({ options, command }, id) => {
        const client = clientFor(command, 'apiKey');
        const printer: EventPrinter =
          options.json === true ? jsonPrinter(terminal) : new TextPrinter(terminal, id, ' · Ctrl-C stops following');
        const status = await withInterrupts((signal) => follow(client, id, printer, { after: options.after, signal }));
        return status === null ? EXIT.error : exitCodeOf(status);
      }),
    );
}
