import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Piscina } from 'piscina';

/** Most threads the automatic size gives the pool (OFFLOAD_THREADS may set more). */
export const MAX_AUTO_OFFLOAD_THREADS = 16;
/** Tasks that may wait per thread when OFFLOAD_QUEUE_MAX is unset. */
export const OFFLOAD_QUEUE_PER_THREAD = 16;
/** How long a thread with nothing to do lives on before it exits (ms). */
const IDLE_THREAD_MS = 30_000;

/**
 * The pool's threads: the container-aware CPU count, at most MAX_AUTO_OFFLOAD_THREADS. More
 * threads than cores would only time-slice the event loop away from every other run.
 */
export function autoOffloadThreads(cpus: number): number {
  return Math.max(1, Math.min(cpus, MAX_AUTO_OFFLOAD_THREADS));
}

/** An offloaded task that found the pool's queue full (OFFLOAD_QUEUE_MAX); only its own run fails. */
export class OffloadQueueFullError extends Error {
  readonly code = 'offload_queue_full';

  constructor(queueMax: number) {
    super(`ctx.offload: the offload queue is full (OFFLOAD_QUEUE_MAX=${queueMax} tasks already wait for a thread); try again later`);
    this.name = 'OffloadQueueFullError';
  }
}

export interface OffloadPoolOptions {
  readonly threads: number;
  /** Tasks that may wait for a thread; one more is refused with OffloadQueueFullError. */
  readonly queueMax: number;
  /** Where relative module paths resolve (AGENTS_DIR); undefined: only absolute paths and file: URLs. */
  readonly baseDir: string | undefined;
  /** A thread that failed outside any task (it could not start): logged by the owner; its tasks reject on their own. */
  readonly onError?: (error: unknown) => void;
}

/**
 * Worker threads for CPU-heavy agent work (`ctx.offload`), over piscina: threads start when
 * first needed and exit when idle, a bounded queue refuses what it cannot hold, and a task's
 * signal takes it out of the queue or stops its thread. Closed by the lifecycle after the runs
 * drained; close() ends every thread.
 */
export class OffloadPool {
  private pool: Piscina | undefined;
  /** Tasks submitted and not yet settled: running on a thread or waiting for one. */
  private inFlight = 0;
  private closing: Promise<void> | undefined;

  constructor(private readonly options: OffloadPoolOptions) {}

  get threads(): number {
    return this.options.threads;
  }

  get queueMax(): number {
    return this.options.queueMax;
  }

  /** Tasks running or waiting for a thread now. */
  get inFlightCount(): number {
    return this.inFlight;
  }

  /**
   * Runs `exportName` of the module at `modulePath` with `args` on a thread. Rejects with what
   * the task threw (its message kept), OffloadQueueFullError, or `signal`'s reason once it fires.
   */
  async run<T>(modulePath: string | URL, exportName: string, args: unknown, signal: AbortSignal): Promise<T> {
    signal.throwIfAborted();
    if (this.closing !== undefined) throw new Error('ctx.offload: the offload pool is closed (shutting down)');
    const url = this.moduleUrl(modulePath);
    const pool = this.started();
    // Counted here (piscina's own bound is a backstop), so the refusal is exact and has its own class.
    if (this.inFlight >= this.options.threads + this.options.queueMax) throw new OffloadQueueFullError(this.options.queueMax);
    this.inFlight += 1;
    try {
      return (await pool.run({ url, exportName, args }, { signal })) as T;
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      throw error;
    } finally {
      this.inFlight -= 1;
    }
  }

  /** Ends every thread, running tasks too; idempotent. */
  close(): Promise<void> {
    this.closing ??= this.pool?.destroy() ?? Promise.resolve();
    return this.closing;
  }

  private started(): Piscina {
    if (this.pool !== undefined) return this.pool;
    const pool = new Piscina({
      filename: new URL(`./offload-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url).href,
      minThreads: 0,
      maxThreads: this.options.threads,
      maxQueue: this.options.queueMax + this.options.threads,
      idleTimeout: IDLE_THREAD_MS,
    });
    // Without a listener, piscina's 'error' event would end the process. One, with the pool.
    pool.on('error', (error: unknown) => this.options.onError?.(error));
    this.pool = pool;
    return pool;
  }

  private moduleUrl(modulePath: string | URL): string {
    if (modulePath instanceof URL || modulePath.startsWith('file:')) return new URL(modulePath).href;
    if (isAbsolute(modulePath)) return pathToFileURL(modulePath).href;
    if (this.options.baseDir === undefined) {
      throw new TypeError(
        `ctx.offload: "${modulePath}" is relative but AGENTS_DIR is unset; pass an absolute path or new URL('./x.mjs', import.meta.url)`,
      );
    }
    return pathToFileURL(resolve(this.options.baseDir, modulePath)).href;
  }
}
