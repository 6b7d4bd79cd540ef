import type { Command } from 'commander';
import type { Capacity } from '../../client/index.js';
import { action, printJson } from '../action.js';
import { clientFor } from '../connection.js';
import { EXIT } from '../exit-codes.js';
import { table, type Terminal } from '../terminal.js';

const GIB = 1024 ** 3;

/** The machine rows: each figure with the limit that won (older servers: the figures alone). */
function machineRows(capacity: Capacity): string[][] {
  const { detected, sizing } = capacity;
  if (sizing === undefined) {
    return [
      [
        'machine',
        `${detected.cpus} cpus, ${(detected.memory_bytes / GIB).toFixed(1)} GiB${detected.cgroup === undefined ? '' : ' (cgroup)'}`,
      ],
    ];
  }
  return [
    ['cpus', `${sizing.cpus.value} (${sizing.cpus.source})`],
    ['memory', `${(sizing.memory_bytes.value / GIB).toFixed(1)} GiB (${sizing.memory_bytes.source})`],
  ];
}

function summary(capacity: Capacity, terminal: Terminal): string {
  const { runs, limits, sizing } = capacity;
  const bound = sizing === undefined ? '' : `; bound by ${sizing.run_slots.bound_by}`;
  const workers = sizing === undefined || sizing.run_slots.workers === 1 ? '' : ` (one of ${sizing.run_slots.workers} workers)`;
  const lines = table([
    ['instance', capacity.instance_id],
    ...machineRows(capacity),
    ['run slots', `${runs.in_use} of ${runs.capacity} in use, ${runs.queued} queued${bound}${workers}`],
  ]);
  const limitRows = Object.entries(limits).map(([name, limit]) => [name, String(limit.value), limit.source]);
  return `${lines}\n${table([['LIMIT', 'VALUE', 'SOURCE'], ...limitRows], terminal.style.bold)}`;
}

/** `agentd capacity`: the answering instance's sizing and use (admin token). */
export function registerCapacity(program: Command, terminal: Terminal): void {
  program
    .command('capacity')
    .description("the answering instance's sizing, run slots and limits with their sources (needs the admin token)")
    .option('--json', 'print the whole report (every limiter, its holders) as JSON')
    .action(
      action<{ json?: boolean }>(terminal, async ({ options, command }) => {
        const capacity = await clientFor(command, 'adminToken').admin.capacity();
        if (options.json === true) printJson(terminal, capacity);
        else terminal.stdout.write(summary(capacity, terminal));
        return EXIT.ok;
      }),
    );
}
