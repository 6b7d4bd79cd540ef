import si from 'systeminformation';
import { type CgroupLimits, readCgroupLimits, UNLIMITED_BYTES } from './cgroup.js';
import { effectiveResources, type Resources } from './sizing.js';

export interface DetectedMachine {
  readonly host: Resources;
  readonly cgroup: CgroupLimits | null;
  readonly constrainedMemoryBytes: number | null;
  readonly effective: Resources;
}

/** process.constrainedMemory() may be missing, or return 0 / a huge number when there is no limit. */
function readConstrainedMemory(): number | null {
  const read = (process as { constrainedMemory?: () => number | undefined }).constrainedMemory;
  if (typeof read !== 'function') return null;
  const bytes = read.call(process);
  return bytes !== undefined && Number.isFinite(bytes) && bytes > 0 && bytes < UNLIMITED_BYTES ? bytes : null;
}

/** Reads CPUs and memory with systeminformation (si.cpu().cores, si.mem().total), the cgroup files and process.constrainedMemory(). */
export async function detectMachine(cgroupRoot?: string): Promise<DetectedMachine> {
  const [cpu, mem, cgroup] = await Promise.all([si.cpu(), si.mem(), readCgroupLimits(cgroupRoot)]);
  const host: Resources = { cpus: Math.max(1, cpu.cores), memoryBytes: mem.total };
  const constrainedMemoryBytes = readConstrainedMemory();
  return { host, cgroup, constrainedMemoryBytes, effective: effectiveResources(host, cgroup, constrainedMemoryBytes) };
}
