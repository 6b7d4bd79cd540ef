import { access, readFile } from 'node:fs/promises';
import { join, posix } from 'node:path';

/** One limit as a cgroup file gave it: the figure and the file it was read from. */
export interface CgroupValue {
  readonly value: number;
  readonly file: string;
}

/** The tightest limits of this process's own cgroup and its ancestors; null where none is set. */
export interface CgroupLimits {
  readonly version: 1 | 2;
  /** Cores the CPU quota allows (quota ÷ period, may be fractional, e.g. 1.5). */
  readonly cpuQuota: CgroupValue | null;
  /** CPUs in the cpuset (cpuset.cpus.effective, or cpuset.cpus). */
  readonly cpusetCpus: CgroupValue | null;
  readonly memoryBytes: CgroupValue | null;
}

/** Where to read: a cgroup mount and the text of /proc/self/cgroup (tests give a temporary tree). */
export interface CgroupSource {
  /** The cgroup mount; default /sys/fs/cgroup. */
  readonly root?: string;
  /** The text of /proc/self/cgroup; default: read that file (unreadable: the root's own limits only). */
  readonly procSelfCgroup?: string;
}

/** Byte figures at or above this (2^60) mean "no limit" (cgroup v1's 2^63-ish sentinel, constrainedMemory's 2^64). */
export const UNLIMITED_BYTES = 2 ** 60;

const V1_CONTROLLERS = ['cpu', 'cpuset', 'memory'] as const;
type V1Controller = (typeof V1_CONTROLLERS)[number];

/** Trimmed file contents, or null when the file is missing or unreadable (a missing limit). */
async function readText(path: string): Promise<string | null> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    return null; // no such controller or file here: the caller treats it as no limit
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false; // absent: the caller tries the other cgroup version
  }
}

/** A non-negative decimal integer, or null for anything else ("max", "-1", garbage). */
function parseCount(text: string | null | undefined): number | null {
  if (text == null || !/^\d+$/.test(text)) return null;
  const value = Number(text);
  return Number.isFinite(value) ? value : null;
}

function cpuFromQuota(quota: number | null, period: number | null): number | null {
  if (quota === null || period === null || quota <= 0 || period <= 0) return null;
  return quota / period;
}

function memoryFromBytes(bytes: number | null): number | null {
  if (bytes === null || bytes <= 0 || bytes >= UNLIMITED_BYTES) return null;
  return bytes;
}

/** CPUs in a cpuset list such as "0-3,8,10-11"; null when empty or malformed. */
export function countCpuset(text: string | null): number | null {
  if (text === null || text === '') return null;
  let count = 0;
  for (const part of text.split(',')) {
    const match = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (match === null) return null;
    const first = Number(match[1]);
    const last = match[2] === undefined ? first : Number(match[2]);
    if (last < first) return null;
    count += last - first + 1;
  }
  return count > 0 ? count : null;
}

/**
 * /proc/self/cgroup as paths by controller: `0::/path` (v2) under `''`, and each v1 line
 * (`4:cpu,cpuacct:/docker/abc`) under each of its controllers, with `mount` the v1 mount's
 * directory name (the line's controller list, e.g. `cpu,cpuacct`).
 */
function parseProcSelfCgroup(text: string): Map<string, { path: string; mount: string }> {
  const paths = new Map<string, { path: string; mount: string }>();
  for (const line of text.split('\n')) {
    const match = /^\d+:([^:]*):(\/.*)$/.exec(line.trim());
    if (match === null) continue;
    const [, controllers = '', path = '/'] = match;
    for (const controller of controllers === '' ? [''] : controllers.split(',')) paths.set(controller, { path, mount: controllers });
  }
  return paths;
}

/**
 * The directories from `base/path` up to `base`, deepest first. In a container whose cgroup
 * namespace hides the host's path, the deeper ones do not exist and `base` is its own cgroup.
 */
function ancestors(base: string, path: string): string[] {
  const dirs: string[] = [];
  for (let current = posix.normalize(path); ; current = posix.dirname(current)) {
    dirs.push(join(base, current));
    if (current === '/' || current === '.') return dirs;
  }
}

/** The smallest figure `read` finds in `dirs` (the tightest limit), with the file it came from. */
async function tightest(dirs: readonly string[], file: string, read: (dir: string) => Promise<number | null>): Promise<CgroupValue | null> {
  let best: CgroupValue | null = null;
  for (const dir of dirs) {
    const value = await read(dir);
    if (value !== null && (best === null || value < best.value)) best = { value, file: join(dir, file) };
  }
  return best;
}

async function readV2(dirs: readonly string[]): Promise<CgroupLimits> {
  return {
    version: 2,
    // cpu.max is "<quota> <period>" or "max <period>".
    cpuQuota: await tightest(dirs, 'cpu.max', async (dir) => {
      const [quota, period] = ((await readText(join(dir, 'cpu.max'))) ?? '').split(/\s+/);
      return cpuFromQuota(parseCount(quota), parseCount(period));
    }),
    cpusetCpus:
      (await tightest(dirs, 'cpuset.cpus.effective', async (dir) => countCpuset(await readText(join(dir, 'cpuset.cpus.effective'))))) ??
      (await tightest(dirs, 'cpuset.cpus', async (dir) => countCpuset(await readText(join(dir, 'cpuset.cpus'))))),
    memoryBytes: await tightest(dirs, 'memory.max', async (dir) => memoryFromBytes(parseCount(await readText(join(dir, 'memory.max'))))),
  };
}

/** The directory of each v1 controller's own cgroup and its ancestors, under the first mount name that exists. */
async function v1Dirs(root: string, own: Map<string, { path: string; mount: string }>): Promise<Map<V1Controller, string[]>> {
  const found = new Map<V1Controller, string[]>();
  for (const controller of V1_CONTROLLERS) {
    const line = own.get(controller);
    const mounts = [...new Set([line?.mount, controller, ...(controller === 'cpu' ? ['cpu,cpuacct', 'cpuacct,cpu'] : [])])];
    for (const mount of mounts) {
      if (mount === undefined || !(await exists(join(root, mount)))) continue;
      found.set(controller, ancestors(join(root, mount), line?.path ?? '/'));
      break;
    }
  }
  return found;
}

async function readV1(root: string, own: Map<string, { path: string; mount: string }>): Promise<CgroupLimits | null> {
  const dirs = await v1Dirs(root, own);
  if (dirs.size === 0) return null;
  const cpuset = dirs.get('cpuset') ?? [];
  return {
    version: 1,
    cpuQuota: await tightest(dirs.get('cpu') ?? [], 'cpu.cfs_quota_us', async (dir) =>
      cpuFromQuota(parseCount(await readText(join(dir, 'cpu.cfs_quota_us'))), parseCount(await readText(join(dir, 'cpu.cfs_period_us')))),
    ),
    cpusetCpus:
      (await tightest(cpuset, 'cpuset.effective_cpus', async (dir) => countCpuset(await readText(join(dir, 'cpuset.effective_cpus'))))) ??
      (await tightest(cpuset, 'cpuset.cpus', async (dir) => countCpuset(await readText(join(dir, 'cpuset.cpus'))))),
    memoryBytes: await tightest(dirs.get('memory') ?? [], 'memory.limit_in_bytes', async (dir) =>
      memoryFromBytes(parseCount(await readText(join(dir, 'memory.limit_in_bytes')))),
    ),
  };
}

/**
 * Reads this process's CPU and memory limits from its own cgroup (the paths in
 * /proc/self/cgroup under `root`, default /sys/fs/cgroup) and every ancestor up to the mount,
 * keeping the tightest of each. cgroup v2 when the mount has `cgroup.controllers`, else v1
 * (hybrid hosts: the v1 controllers). "max", -1 and v1's 2^63-ish memory sentinel mean no
 * limit. Null when there is no cgroup mount at all.
 */
export async function readCgroupLimits(source: CgroupSource = {}): Promise<CgroupLimits | null> {
  const root = source.root ?? '/sys/fs/cgroup';
  const own = parseProcSelfCgroup(source.procSelfCgroup ?? (await readText('/proc/self/cgroup')) ?? '');
  if (await exists(join(root, 'cgroup.controllers'))) return readV2(ancestors(root, own.get('')?.path ?? '/'));
  return readV1(root, own);
}
