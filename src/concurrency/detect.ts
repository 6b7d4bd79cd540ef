import { availableParallelism, totalmem } from 'node:os';
import { type CgroupLimits, type CgroupSource, readCgroupLimits, UNLIMITED_BYTES } from './cgroup.js';
import { effectiveResources, type MachineFigures, type Resources } from './sizing.js';

export interface DetectedMachine {
  /** os.availableParallelism() and os.totalmem(). */
  readonly host: Resources;
  readonly cgroup: CgroupLimits | null;
  readonly constrainedMemoryBytes: number | null;
  /** The figures sized for (the host's lowered to every limit). */
  readonly effective: Resources;
  /** The same figures, each with the limit that won. */
  readonly figures: MachineFigures;
}

/** process.constrainedMemory() may be missing, or return 0 / a huge number when there is no limit. */
function readConstrainedMemory(): number | null {
  const read = (process as { constrainedMemory?: () => number | undefined }).constrainedMemory;
  if (typeof read !== 'function') return null;
  const bytes = read.call(process);
  return bytes !== undefined && Number.isFinite(bytes) && bytes > 0 && bytes < UNLIMITED_BYTES ? bytes : null;
}

/**
 * The machine this process may use: os.availableParallelism() (which follows the CPU affinity
 * mask) and os.totalmem(), lowered to the limits of its own cgroup (`source`: the mount and
 * /proc/self/cgroup, for tests) and process.constrainedMemory(). Reads files only; spawns nothing.
 */
export async function detectMachine(source?: CgroupSource): Promise<DetectedMachine> {
  const host: Resources = { cpus: Math.max(1, availableParallelism()), memoryBytes: totalmem() };
  const cgroup = await readCgroupLimits(source);
  const constrainedMemoryBytes = readConstrainedMemory();
  const figures = effectiveResources({ host, cgroup, constrainedMemoryBytes });
  return {
    host,
    cgroup,
    constrainedMemoryBytes,
    effective: { cpus: figures.cpus.value, memoryBytes: figures.memoryBytes.value },
    figures,
  };
}
