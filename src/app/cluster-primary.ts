import cluster, { type Worker } from 'node:cluster';
import { WORKER_ENV } from '../config/config.js';
import type { Logger } from '../domain/index.js';
import { ClusterMetricsPrimary } from '../observability/cluster-metrics.js';
import { inSingleExecutable } from '../lib/embedded-assets.js';
import { ConnectionRouter } from './connection-router.js';

/** The first restart of a slot waits this long; each quick exit in a row doubles it. */
const RESTART_BASE_DELAY_MS = 250;
/** A worker that ran at least this long before exiting starts its slot's count of quick exits afresh. */
const STABLE_UPTIME_MS = 60_000;
/** Restarts of one slot in a row after quick exits (delays 0.25 + 0.5 + 1 + 2 + 4 s); the next quick exit stops the primary with exit 1. */
const MAX_QUICK_EXITS = 5;
/**
 * Time a worker gets, beyond two SHUTDOWN_GRACE_MS periods, to close its connections before it
 * is killed: a draining worker lets runs finish for one grace period, then ends the rest and
 * gives their endings (database writes) a second one.
 */
const DRAIN_MARGIN_MS = 10_000;
/** What main.ts exits with on a bad configuration; restarting such a worker could only loop. */
const CONFIG_EXIT_CODE = 2;
const SECOND_SIGNAL_EXIT_CODE = 130;

export interface PrimaryOptions {
  /** Worker processes to keep running (WORKERS resolved), at least 2. */
  readonly workers: number;
  /** After SIGTERM/SIGINT a worker gets twice this plus 10 s to drain before it is killed. */
  readonly shutdownGraceMs: number;
  /** PORT and HOST: the primary binds them and hands each connection to a worker (ConnectionRouter). */
  readonly port: number;
  readonly host: string;
  readonly logger: Logger;
}

interface Slot {
  /** 1..workers; the worker's INSTANCE_ID is `<INSTANCE_ID>/<slot>`. */
  readonly slot: number;
  worker: Worker | null;
  startedAtMs: number;
  quickExits: number;
  restart: NodeJS.Timeout | null;
}

/**
 * Runs the cluster primary, which does no agentd work: binds the port and forks `workers` workers,
 * handing each connection to the next one (ConnectionRouter, round-robin), restarts one that exits unexpectedly (backoff from 250 ms; up to
 * 5 restarts in a row of workers that exited within 60 s of their start, then it gives up), forwards SIGTERM/SIGINT and waits for
 * the workers to drain. Resolves with the process's exit code: 0 after a clean stop, 1 when a
 * worker could not stop or kept exiting, 2 when a worker refused its configuration, 130 on a
 * second signal (the workers are killed).
 */
export function runPrimary(options: PrimaryOptions): Promise<number> {
  return new ClusterPrimary(options).run();
}

class ClusterPrimary {
  private readonly slots: Slot[];
  private readonly logger: Logger;
  /** Sums the workers' metrics for the one that was scraped. */
  private readonly metrics: ClusterMetricsPrimary;
  private readonly router: ConnectionRouter;
  /** The port bound; 0 until run() binds it. */
  private port = 0;
  /** The signal sent to the workers once stopping. */
  private stopSignal: NodeJS.Signals | null = null;
  private exitCode = 0;
  private signals = 0;
  private deadline: NodeJS.Timeout | undefined;
  private finish: (code: number) => void = () => undefined;

  constructor(private readonly options: PrimaryOptions) {
    this.logger = options.logger;
    this.metrics = new ClusterMetricsPrimary({
      onError: (error) => this.logger.warn('a cluster metrics message could not be sent', { error }),
    });
    this.router = new ConnectionRouter(this.logger);
    this.slots = Array.from({ length: options.workers }, (_, i) => ({
      slot: i + 1,
      worker: null,
      startedAtMs: 0,
      quickExits: 0,
      restart: null,
    }));
  }

  async run(): Promise<number> {
    const done = new Promise<number>((resolve) => (this.finish = resolve));
    process.on('SIGTERM', (signal) => this.onSignal(signal));
    process.on('SIGINT', (signal) => this.onSignal(signal));
    this.port = await this.router.listen(this.options.port, this.options.host);
    this.logger.info('starting workers', { workers: this.options.workers, pid: process.pid, port: this.port });
    // node:cluster runs a worker as `<node> <argv[1]> <argv[2…]>`. The single executable's
    // argv[1] repeats its own path and it reads its arguments from argv[2], so the worker's
    // command line starts there (`agentd serve`), else the worker would see its path as a command.
    if (inSingleExecutable()) cluster.setupPrimary({ exec: process.argv[2] ?? 'serve', args: process.argv.slice(3) });
    for (const slot of this.slots) if (this.stopSignal === null) this.fork(slot);
    this.finishWhenAllStopped();
    return done;
  }

  private fork(slot: Slot): void {
    // PORT is the one bound (PORT=0 picks one), so each worker reports the URL it is reached at.
    const worker = cluster.fork({ [WORKER_ENV]: `${slot.slot}/${this.options.workers}`, PORT: String(this.port) });
    slot.worker = worker;
    slot.startedAtMs = Date.now();
    this.router.add(worker);
    this.logger.info('worker started', { slot: slot.slot, pid: worker.process.pid });
    worker.on('error', (error: unknown) => this.logger.warn('worker process error', { slot: slot.slot, error }));
    worker.on('message', (message: unknown) => {
      this.router.onMessage(worker, message);
      this.metrics.onMessage(worker, message);
    });
    // The channel closes as the process dies, often before 'exit': route elsewhere from then on.
    worker.on('disconnect', () => this.router.remove(worker));
    worker.on('exit', (code: number | null, signal: NodeJS.Signals | null) => this.onExit(slot, worker, code, signal));
  }

  private onExit(slot: Slot, worker: Worker, code: number | null, signal: NodeJS.Signals | null): void {
    if (slot.worker === worker) slot.worker = null;
    this.router.remove(worker);
    this.metrics.onExit(worker);
    const exit = { slot: slot.slot, pid: worker.process.pid, code, signal };
    if (this.stopSignal !== null) {
      // A worker still loading its modules has no handler yet and dies of the signal itself; it held no runs.
      const clean = code === 0 || signal === this.stopSignal;
      if (!clean && this.exitCode === 0) this.exitCode = 1;
      this.logger.info('worker stopped', exit);
      this.finishWhenAllStopped();
      return;
    }
    if (code === CONFIG_EXIT_CODE) {
      this.logger.error('worker refused its configuration; stopping', exit);
      this.stop(CONFIG_EXIT_CODE, 'SIGTERM');
      return;
    }
    slot.quickExits = Date.now() - slot.startedAtMs < STABLE_UPTIME_MS ? slot.quickExits + 1 : 1;
    if (slot.quickExits > MAX_QUICK_EXITS) {
      this.logger.error('worker keeps exiting; stopping the others', { ...exit, restarts: MAX_QUICK_EXITS });
      this.stop(1, 'SIGTERM');
      return;
    }
    const delayMs = RESTART_BASE_DELAY_MS * 2 ** (slot.quickExits - 1);
    this.logger.error('worker exited unexpectedly; restarting it', { ...exit, delay_ms: delayMs, quick_exits: slot.quickExits });
    slot.restart = setTimeout(() => {
      slot.restart = null;
      this.fork(slot);
    }, delayMs);
  }

  private onSignal(signal: NodeJS.Signals): void {
    this.signals += 1;
    if (this.signals === 1) {
      this.logger.info('signal received; stopping the workers', { signal, grace_ms: this.options.shutdownGraceMs });
      this.stop(0, signal);
      return;
    }
    this.logger.warn('second signal; killing the workers', { signal });
    this.killAll();
    this.finish(SECOND_SIGNAL_EXIT_CODE);
  }

  /** Sends `signal` to every worker (each drains as a lone process does) and waits for them, killing what is left after two graces + margin. */
  private stop(code: number, signal: NodeJS.Signals): void {
    if (this.stopSignal !== null) return;
    this.stopSignal = signal;
    this.exitCode = code;
    for (const slot of this.slots) {
      if (slot.restart !== null) clearTimeout(slot.restart);
      slot.restart = null;
      slot.worker?.process.kill(signal);
    }
    const waitMs = 2 * this.options.shutdownGraceMs + DRAIN_MARGIN_MS;
    this.deadline = setTimeout(() => {
      this.logger.error('workers did not stop in time; killing them', { wait_ms: waitMs });
      if (this.exitCode === 0) this.exitCode = 1;
      this.killAll();
    }, waitMs);
    this.finishWhenAllStopped();
  }

  private killAll(): void {
    for (const slot of this.slots) slot.worker?.process.kill('SIGKILL');
  }

  private finishWhenAllStopped(): void {
    if (!this.slots.every((slot) => slot.worker === null)) return;
    clearTimeout(this.deadline);
    this.router.close();
    this.metrics.close();
    this.finish(this.exitCode);
  }
}
