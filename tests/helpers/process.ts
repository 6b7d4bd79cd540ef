import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

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

/**
 * Runs `src/main.ts` (or `args`, e.g. the CLI's `serve`) as its own OS process and waits for its
 * "listening" log line.
 */
export async function spawnAgentd(
  env: Record<string, string>,
  { startTimeoutMs = 30_000, args = ['src/main.ts'] }: { startTimeoutMs?: number; args?: readonly string[] } = {},
): Promise<AgentdProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], {
    cwd: ROOT,
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
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
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
