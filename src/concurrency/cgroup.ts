import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface CgroupLimits {
  readonly version: 1 | 2;
  readonly cpuLimit: number | null; // cores allowed by the quota (may be fractional, e.g. 1.5), null = no quota
  readonly memoryLimitBytes: number | null; // null = unlimited
}

/** Memory figures at or above this (2^60) are the kernel's way of saying "no limit". */
/** Byte figures at or above this mean "no limit" (cgroup v1 and constrainedMemory report huge numbers). */
export const UNLIMITED_BYTES = 2 ** 60;

/** Trimmed file contents, or null when the file is missing or unreadable. */
async function readText(path: string): Promise<string | null> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    return null;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
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

async function readV2(root: string): Promise<CgroupLimits> {
  // cpu.max is "<quota> <period>" or "max <period>".
  const [quota, period] = ((await readText(join(root, 'cpu.max'))) ?? '').split(/\s+/);
  return {
    version: 2,
    cpuLimit: cpuFromQuota(parseCount(quota), parseCount(period)),
    memoryLimitBytes: memoryFromBytes(parseCount(await readText(join(root, 'memory.max')))),
  };
}

async function readV1(root: string): Promise<CgroupLimits | null> {
  let quotaText: string | null = null;
  let periodText: string | null = null;
  for (const dir of ['cpu', 'cpu,cpuacct']) {
    quotaText = await readText(join(root, dir, 'cpu.cfs_quota_us'));
    if (quotaText !== null) {
      periodText = await readText(join(root, dir, 'cpu.cfs_period_us'));
      break;
    }
  }
  const memoryText = await readText(join(root, 'memory', 'memory.limit_in_bytes'));
  if (quotaText === null && memoryText === null) return null;
  return {
    version: 1,
    cpuLimit: cpuFromQuota(parseCount(quotaText), parseCount(periodText)),
    memoryLimitBytes: memoryFromBytes(parseCount(memoryText)),
  };
}

/** Reads the container's CPU and memory limits under `root` (default /sys/fs/cgroup); null when no cgroup files are found. */
export async function readCgroupLimits(root = '/sys/fs/cgroup'): Promise<CgroupLimits | null> {
  if (await exists(join(root, 'cgroup.controllers'))) return readV2(root);
  return readV1(root);
}
