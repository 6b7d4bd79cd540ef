import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { SteadyWindow, WorkerCommand, WorkerReport } from '../sse-worker.js';
import type { SseRequest } from './sse.js';

const WORKER = fileURLToPath(new URL('../sse-worker.ts', import.meta.url));

/**
 * The listener process's node flags, the same for every pass (recorded in the results): it shares
 * the 2 cores with the servers, so its own CPU must not vary with whatever NODE_OPTIONS the
 * shell had. A 4 GB old space: one run × 1,000 listeners keeps every latency sample.
 */
export const LISTENER_NODE_ARGS: readonly string[] = ['--import', 'tsx', '--max-old-space-size=4096'];

/** The bench's environment without NODE_OPTIONS (flags come from LISTENER_NODE_ARGS only). */
function listenerEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  return env;
}

/** The SSE listeners of one scenario, in a child process (bench/sse-worker.ts). */
export class ListenerPool {
  private constructor(private readonly child: ChildProcess) {}

  static async start(): Promise<ListenerPool> {
    const child = fork(WORKER, [], {
      execArgv: [...LISTENER_NODE_ARGS],
      env: listenerEnv(),
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const pool = new ListenerPool(child);
    await pool.next('ready', 30_000);
    return pool;
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  open(request: SseRequest, expected: number, closeIsEnd = false): void {
    this.send({ t: 'open', request, expected, closeIsEnd });
  }

  /** Resolves once `count` listeners got their response headers (or failed). */
  async connected(count: number, timeoutMs: number): Promise<{ ok: boolean; connected: number; failed: number; failures: string[] }> {
    const reply = this.next<{ ok: boolean; connected: number; failed: number; failures: string[] }>('connected', timeoutMs + 5_000);
    this.send({ t: 'connected', count, timeoutMs });
    return reply;
  }

  /** From now on, events emitted count as steady state. */
  async mark(): Promise<number> {
    const reply = this.next<{ markMs: number }>('marked', 10_000);
    this.send({ t: 'mark' });
    return (await reply).markMs;
  }

  /** Waits until every listener closed (or `timeoutMs`), then returns the report. */
  async report(timeoutMs: number, window?: SteadyWindow): Promise<WorkerReport> {
    const reply = this.next<{ report: WorkerReport }>('report', timeoutMs + 30_000);
    this.send({ t: 'report', timeoutMs, ...(window === undefined ? {} : { window }) });
    return (await reply).report;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = once(this.child, 'exit');
    if (this.child.connected) this.send({ t: 'exit' });
    else this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }

  private send(command: WorkerCommand): void {
    this.child.send(command);
  }

  private next<T>(type: string, timeoutMs: number): Promise<T> {
    return new Promise((resolve, reject) => {
      const onMessage = (message: { t: string } & T) => {
        if (message.t !== type) return;
        cleanup();
        resolve(message);
      };
      const onExit = (code: number | null) => {
        cleanup();
        reject(new Error(`listener process exited (${code}) while waiting for '${type}'`));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`listener process: no '${type}' in ${timeoutMs} ms`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.child.off('message', onMessage);
        this.child.off('exit', onExit);
      };
      this.child.on('message', onMessage);
      this.child.on('exit', onExit);
    });
  }
}
