import type { DetectedMachine } from '../concurrency/detect.js';
import type { LimitTable } from './capacity-report.js';

const MIB = 1024 * 1024;

/** What the start-up `sizing` line says besides the machine and the limits. */
export interface SizingFacts {
  readonly database: string;
  readonly eventStore: string;
  readonly tiers: Readonly<Record<string, number>>;
}

/**
 * The fields of the start-up `sizing` line, compact: the machine as sized for (CPUs, MiB; the
 * host's figures and the limits that won too when a container limit lowered them), every limit as `NAME: value`, and
 * in `sources` only the limits not at their default (`env`: set; `auto`: sized at start-up).
 * `/v1/admin/capacity` has the whole report.
 */
export function sizingSummary(machine: DetectedMachine, limits: LimitTable, facts: SizingFacts): Record<string, unknown> {
  const { host, effective } = machine;
  const memoryMib = (bytes: number) => Math.round(bytes / MIB);
  const limited = host.cpus !== effective.cpus || host.memoryBytes !== effective.memoryBytes;
  const values: Record<string, number> = {};
  const sources: Record<string, string> = {};
  for (const [name, limit] of Object.entries(limits)) {
    values[name] = limit.value;
    if (limit.source !== 'default') sources[name] = limit.source;
  }
  return {
    machine: {
      cpus: effective.cpus,
      memory_mib: memoryMib(effective.memoryBytes),
      ...(limited
        ? {
            host_cpus: host.cpus,
            host_memory_mib: memoryMib(host.memoryBytes),
            cpus_from: machine.figures.cpus.source,
            memory_from: machine.figures.memoryBytes.source,
          }
        : {}),
    },
    limits: values,
    sources,
    database: facts.database,
    event_store: facts.eventStore,
    tiers: facts.tiers,
  };
}
