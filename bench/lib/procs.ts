import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export { freePort } from '../../tests/helpers/private-redis.js';

/** Resident set size of a process in bytes, from /proc/<pid>/status (VmRSS); NaN once it is gone. */
export function rssBytes(pid: number): number {
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match === null ? Number.NaN : Number(match[1]) * 1024;
  } catch {
    return Number.NaN;
  }
}

/** PIDs of the Postgres server's processes (postmaster and backends) on this machine. */
export function postgresPids(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === 'postgres') pids.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return pids;
}

/** A client backend's database (`postgres: 15/main: user db host(port) state`) or an autovacuum worker's. */
const BACKEND_DATABASE = /^postgres: (?:.*?: )?(?:\S+ (\S+) (?:\S+\(\d+\)|\[local\])|autovacuum worker (\S+))/;

/**
 * PIDs of the Postgres processes that work for `databases`: their backends and autovacuum
 * workers, plus the server's shared processes (postmaster, WAL writer, checkpointer, background
 * writer), but not the backends of other databases — other engineers' tests use the same server.
 */
export function postgresPidsOf(databases: readonly string[]): () => number[] {
  const ours = new Set(databases);
  return () =>
    postgresPids().filter((pid) => {
      try {
        const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
        const match = BACKEND_DATABASE.exec(cmd);
        return match === null || ours.has(match[1] ?? match[2] ?? '');
      } catch {
        return false; // ended while we looked: its CPU is gone with it
      }
    });
}

/**
 * CPU seconds used since now by a changing set of processes (`pids()` is asked again at each
 * reading, so processes that start meanwhile count from their start).
 */
export function cpuMeter(pids: () => readonly number[]): () => number {
  const start = new Map(pids().map((pid) => [pid, cpuSeconds(pid)]));
  return () => pids().reduce((sum, pid) => sum + (cpuSeconds(pid) - (start.get(pid) ?? 0) || 0), 0);
}

/** User+system CPU seconds a process used so far, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return ticks / 100; // USER_HZ is 100 on Linux
  } catch {
    return Number.NaN;
  }
}

export interface ManagedProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** The last lines it wrote (stdout and stderr), for error reports. */
  tail(): string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code. Idempotent. */
  stop(graceMs?: number): Promise<number | null>;
}

/**
 * Spawns a process and waits until `ready(line)` returns a value for one of its output lines
 * (JSON log lines or plain text); rejects when it exits first or after `timeoutMs`.
 */
export async function startProcess<T>(
  name: string,
  command: string,
  args: readonly string[],
  options: { cwd?: string; env: NodeJS.ProcessEnv; timeoutMs?: number; ready: (line: string) => T | undefined; logFile?: string },
): Promise<{ proc: ManagedProcess; value: T }> {
  // With a log file, the process writes straight to it: a pipe this busy process reads could
  // fill up and block the server's synchronous stdout writes, which would measure the bench.
  let logFd: number | undefined;
  if (options.logFile !== undefined) {
    mkdirSync(dirname(options.logFile), { recursive: true });
    logFd = openSync(options.logFile, 'w');
  }
  const child = spawn(command, args, {
    cwd: options.cwd ?? ROOT,
    env: options.env,
    stdio: logFd === undefined ? ['ignore', 'pipe', 'pipe'] : ['ignore', logFd, logFd],
  });
  if (logFd !== undefined) closeSync(logFd);
  const lines: string[] = [];
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  let stopping: Promise<number | null> | undefined;
  const proc: ManagedProcess = {
    name,
    child,
    pid: child.pid ?? -1,
    tail: () => (options.logFile === undefined ? lines.slice(-30).join('\n') : readTail(options.logFile)),
    stop(graceMs = 15_000) {
      stopping ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        const code = await exited;
        clearTimeout(timer);
        return code;
      })();
      return stopping;
    },
  };
  const value = await new Promise<T>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => {
      settled = true;
      const tail = proc.tail();
      void proc.stop(2_000); // never leave a process behind that did not become ready
      reject(new Error(`${name} did not start in ${options.timeoutMs ?? 60_000} ms:\n${tail}`));
    }, options.timeoutMs ?? 60_000);
    const onLine = (line: string) => {
      lines.push(line);
      if (lines.length > 200) lines.splice(0, 100);
      if (settled) return;
      const found = options.ready(line);
      if (found !== undefined) {
        settled = true;
        clearTimeout(timer);
        resolve(found);
      }
    };
    if (options.logFile !== undefined) {
      // Follow the file until ready (then only `tail()` reads it again).
      const fd = openSync(options.logFile, 'r');
      let position = 0;
      let buffer = '';
      const chunk = Buffer.alloc(64 * 1024);
      const poll = setInterval(() => {
        for (let n = readSync(fd, chunk, 0, chunk.length, position); n > 0; n = readSync(fd, chunk, 0, chunk.length, position)) {
          position += n;
          buffer += chunk.subarray(0, n).toString('utf8');
        }
        for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
          onLine(buffer.slice(0, nl));
          buffer = buffer.slice(nl + 1);
        }
        if (settled) {
          clearInterval(poll);
          closeSync(fd);
        }
      }, 50);
    }
    for (const stream of [child.stdout, child.stderr]) {
      let buffer = '';
      stream?.setEncoding('utf8').on('data', (chunk: string) => {
        buffer += chunk;
        for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
          onLine(buffer.slice(0, nl));
          buffer = buffer.slice(nl + 1);
        }
      });
    }
    void exited.then((code) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code} before it was ready:\n${proc.tail()}`));
    });
  });
  if (value === undefined) throw new Error(`${name}: no ready value`);
  return { proc, value };
}

function readTail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-30).join('\n');
  } catch {
    return '';
  }
}

export interface AgentdProcess extends ManagedProcess {
  readonly url: string;
  readonly instanceId: string;
}

/** Starts `dist/main.js` as its own OS process and waits for its `listening` log line. */
export async function startAgentd(
  name: string,
  env: Record<string, string>,
  options: { profileDir?: string; nodeArgs?: readonly string[]; logDir?: string } = {},
): Promise<AgentdProcess> {
  const instanceId = env.INSTANCE_ID ?? name;
  const nodeArgs = [...(options.nodeArgs ?? [])];
  if (options.profileDir !== undefined) {
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${options.profileDir}`, `--cpu-prof-name=${name}.${Date.now()}.cpuprofile`);
    nodeArgs.push('--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${options.profileDir}`);
  }
  const { proc, value: url } = await startProcess(name, process.execPath, [...nodeArgs, 'dist/main.js'], {
    logFile: `${options.logDir ?? `${ROOT}bench/results/logs`}/${name}.log`,
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', INSTANCE_ID: instanceId, ...env },
    ready: (line) => {
      if (!line.startsWith('{')) return undefined;
      try {
        const entry = JSON.parse(line) as { message?: string; url?: string };
        return entry.message === 'listening' ? entry.url : undefined;
      } catch {
        return undefined;
      }
    },
  });
  return { ...proc, url, instanceId };
}
