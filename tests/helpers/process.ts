import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { waitFor } from './wait-for.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface AgentdProcess {
  readonly child: ChildProcess;
  readonly url: string;
  /** Everything the process wrote to stderr so far. */
  stderr(): string;
  /** Everything the process wrote to stdout so far, log lines or not. */
  stdout(): string;
  /** The JSON log lines it wrote to stdout so far (a cluster's workers write there too). */
  logs(): ReadonlyArray<Record<string, unknown>>;
  /** Sends a signal and waits for the exit code. */
  kill(signal: NodeJS.Signals): Promise<number | null>;
}

export interface SpawnOptions {
  readonly startTimeoutMs?: number;
  /** What tsx runs: `src/main.ts` unless told (e.g. the CLI's `serve`). */
  readonly args?: readonly string[];
  /** Another command line altogether (e.g. `npm start` in a production install), run in `cwd`. */
  readonly command?: readonly [string, ...string[]];
  readonly cwd?: string;
  /**
   * Runs it in a process group of its own and signals the whole group, as a terminal's Ctrl-C
   * does: for a command such as `npm start`, whose npm and shell do not pass signals on.
   */
  readonly group?: boolean;
}

/**
 * Runs `src/main.ts` (or `args`, or `command`) as its own OS process and waits for its
 * "listening" log line.
 */
export async function spawnAgentd(
  env: Record<string, string>,
  { startTimeoutMs = 30_000, args = ['src/main.ts'], command, cwd = ROOT, group = false }: SpawnOptions = {},
): Promise<AgentdProcess> {
  const [file, ...argv] = command ?? [process.execPath, '--import', 'tsx', ...args];
  const child = spawn(file, argv, {
    cwd,
    detached: group,
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let stdout = '';
  const logs: Array<Record<string, unknown>> = [];
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  const url = await new Promise<string>((resolve, reject) => {
    let buffer = '';
    const timer = setTimeout(() => reject(new Error(`agentd did not start in ${startTimeoutMs} ms: ${stderr}`)), startTimeoutMs);
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      buffer += chunk;
      for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        try {
          const entry = JSON.parse(line) as { message?: string; url?: string };
          logs.push(entry);
          if (entry.message === 'listening' && entry.url !== undefined) {
            clearTimeout(timer);
            resolve(entry.url);
          }
        } catch {
          // not a log line of ours; keep reading
        }
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`agentd exited with ${code} before listening: ${stderr}`));
    });
  });
  return {
    child,
    url,
    stderr: () => stderr,
    stdout: () => stdout,
    logs: () => logs,
    async kill(signal) {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      if (!group) {
        child.kill(signal);
        return exited;
      }
      const pgid = -(child.pid as number);
      process.kill(pgid, signal);
      const code = await exited;
      await waitFor(() => !groupAlive(pgid), { what: `process group ${-pgid} to exit` });
      return code;
    },
  };
}

/** Whether any process of the group `pgid` (negative) is still running. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Runs `src/main.ts` expecting it to refuse to start (killed after `timeoutMs`); returns its exit code, stderr and stdout. */
export async function runAgentdExpectingFailure(
  env: Record<string, string>,
  { timeoutMs = 30_000 } = {},
): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let stdout = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  // 'close', not 'exit': by then both pipes are read to their end.
  const [code] = (await once(child, 'close')) as [number | null];
  clearTimeout(timer);
  return { code, stderr, stdout };
}
