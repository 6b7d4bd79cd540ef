import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AgentRegistry } from '../agents/registry.js';
import {
  FairSemaphore,
  QueueFullError,
  QueueTimeoutError,
  type Acquisition,
  type Permit,
  type Waiter,
} from '../concurrency/fair-semaphore.js';
import type { TierLimits } from '../config/tier-limits.js';
import type { RunRecord, RunRepository } from '../db/run-repository.js';
import {
  AccountConcurrencyLimitError,
  CapacityExhaustedError,
  DependencyUnavailableError,
  DrainingError,
  NotFoundError,
  SessionConcurrencyLimitError,
} from '../errors.js';
import type { Logger } from '../logger.js';
import type { EventLog } from '../streaming/event-log.js';
import type { CancelBus } from './cancel-bus.js';
import { RunContext } from './run-context.js';
import { ENDINGS, RunAbort, endingOf, type RunEnding } from './run-ending.js';
import { isFinal, type ActiveStatus } from './run-status.js';

export interface SubmitRequest {
  readonly accountId: string;
  readonly agent: string;
  readonly input: unknown;
  readonly sessionId: string | null;
  readonly model: string | null;
  /** Null: RUN_TIMEOUT_MS. */
  readonly timeoutMs: number | null;
  readonly metadata: unknown;
  readonly idempotencyKey: string | null;
}

export interface RunManagerOptions {
  readonly instanceId: string;
  readonly tierLimits: TierLimits;
  readonly sessionMaxInflight: number;
  readonly runTimeoutMs: number;
  readonly maxEventsPerRun: number;
  readonly maxEventBytes: number;
}

/** Observers of run endings (metrics); kept narrow so the manager knows nothing of prom-client. */
export interface RunObserver {
  runStarted(agent: string): void;
  runEnded(agent: string, status: string, durationMs: number): void;
}

interface ActiveRun {
  readonly record: RunRecord;
  readonly controller: AbortController;
  readonly context: RunContext;
  done: Promise<void>;
}

const FINALIZE_ATTEMPTS = 6;
const FINALIZE_BACKOFF_MS = 250;
const RETRY_AFTER_S = 1;
/** How long POST /cancel waits for the run to reach its final status before answering. */
const CANCEL_WAIT_MS = 2_000;
const CANCEL_POLL_MS = 25;

/**
 * Admits runs, runs them as async tasks behind the run slots, and ends each exactly once:
 * completion, agent error, cancel, timeout, event limit, queue timeout or shutdown. The slot
 * permit is released in `finally` on every path; an agent that ignores its AbortSignal is
 * raced, so its run still ends and frees its slot.
 */
export class RunManager {
  private readonly active = new Map<string, ActiveRun>();
  private draining = false;
  private shutdownPromise: Promise<void> | undefined;

  constructor(
    private readonly deps: {
      readonly runs: RunRepository;
      readonly slots: FairSemaphore;
      readonly agents: AgentRegistry;
      readonly events: EventLog;
      readonly cancelBus: CancelBus;
      readonly logger: Logger;
      readonly observer: RunObserver;
      readonly options: RunManagerOptions;
    },
  ) {
    deps.cancelBus.onRequest((runId) => this.abortLocal(runId, ENDINGS.cancelled));
  }

  /** Runs in progress on this instance (queued or running). */
  get activeCount(): number {
    return this.active.size;
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /**
   * Admits a run and starts it (or queues it for a slot) without waiting for it.
   * `created` is false when an Idempotency-Key matched an earlier run.
   */
  async submit(request: SubmitRequest): Promise<{ run: RunRecord; created: boolean }> {
    const { runs, slots, agents, options } = this.deps;
    const agent = agents.get(request.agent);
    const input = agents.parseInput(agent, request.input);
    if (this.draining) throw new DrainingError();
    const id = randomUUID();
    let acquisition: Acquisition;
    try {
      acquisition = slots.acquire(id, request.accountId);
    } catch (error) {
      if (error instanceof QueueFullError) throw new CapacityExhaustedError(RETRY_AFTER_S);
      throw error;
    }
    const status: ActiveStatus = acquisition.kind === 'acquired' ? 'running' : 'queued';
    let admitted;
    try {
      admitted = await runs.admit(
        {
          id,
          accountId: request.accountId,
          agent: agent.name,
          status,
          sessionId: request.sessionId,
          input: request.input === undefined ? null : request.input,
          model: request.model,
          metadata: request.metadata ?? null,
          timeoutMs: request.timeoutMs ?? options.runTimeoutMs,
          idempotencyKey: request.idempotencyKey,
          instanceId: options.instanceId,
        },
        options.tierLimits,
        options.sessionMaxInflight,
      );
    } catch (error) {
      abandon(acquisition);
      throw error;
    }
    switch (admitted.outcome) {
      case 'created':
        this.start(admitted.run, input, acquisition);
        return { run: admitted.run, created: true };
      case 'existing':
        abandon(acquisition);
        return { run: admitted.run, created: false };
      case 'account_limit':
        abandon(acquisition);
        throw new AccountConcurrencyLimitError(admitted.limit, admitted.active);
      case 'session_limit':
        abandon(acquisition);
        throw new SessionConcurrencyLimitError(admitted.limit, admitted.active);
      case 'no_account':
        abandon(acquisition);
        throw new NotFoundError('The account of this key no longer exists.');
      default: {
        const unreachable: never = admitted;
        throw new Error(`unexpected admission ${JSON.stringify(unreachable)}`);
      }
    }
  }

  /**
   * Cancels a run of the account: fires its AbortSignal and waits briefly for its final
   * status. Idempotent; a finished run is returned unchanged.
   */
  async cancel(accountId: string, runId: string): Promise<RunRecord> {
    const record = await this.deps.runs.get(accountId, runId);
    if (record === null) throw new NotFoundError();
    if (isFinal(record.status)) return record;
    const active = this.active.get(runId);
    if (active !== undefined) {
      active.controller.abort(new RunAbort(ENDINGS.cancelled));
      await Promise.race([active.done, sleep(CANCEL_WAIT_MS)]);
      return (await this.deps.runs.get(accountId, runId)) ?? record;
    }
    // Another instance runs it: ask over the bus, then wait for its final status.
    await this.deps.cancelBus.request(runId);
    const deadline = Date.now() + CANCEL_WAIT_MS;
    for (;;) {
      const current = (await this.deps.runs.get(accountId, runId)) ?? record;
      if (isFinal(current.status) || Date.now() > deadline) return current;
      await sleep(CANCEL_POLL_MS);
    }
  }

  /** Aborts a run of this instance, if it is here and still going. */
  private abortLocal(runId: string, ending: RunEnding): void {
    const active = this.active.get(runId);
    if (active !== undefined && !active.controller.signal.aborted) active.controller.abort(new RunAbort(ending));
  }

  /**
   * Stops admitting, lets runs finish for up to `graceMs`, then ends the rest `interrupted`
   * (`shutdown`). Idempotent.
   */
  shutdown(graceMs: number): Promise<void> {
    this.shutdownPromise ??= (async () => {
      this.draining = true;
      const all = () => Promise.all([...this.active.values()].map((run) => run.done));
      const timer = sleep(graceMs, undefined, { ref: false });
      await Promise.race([all(), timer]);
      for (const run of this.active.values()) run.controller.abort(new RunAbort(ENDINGS.shutdown));
      await all();
    })();
    return this.shutdownPromise;
  }

  private start(record: RunRecord, input: unknown, acquisition: Acquisition): void {
    const controller = new AbortController();
    const logger = this.deps.logger.child({ runId: record.id, agent: record.agent });
    const context = new RunContext({
      runId: record.id,
      input,
      model: record.model,
      sessionId: record.sessionId,
      signal: controller.signal,
      logger,
      events: this.deps.events,
      maxEvents: this.deps.options.maxEventsPerRun,
      maxEventBytes: this.deps.options.maxEventBytes,
      onEventLimit: (message) => controller.abort(new RunAbort(ENDINGS.eventLimit(message))),
    });
    const active: ActiveRun = { record, controller, context, done: Promise.resolve() };
    this.active.set(record.id, active);
    // A cancel requested on another instance before this run was registered here.
    this.deps.cancelBus.wasRequested(record.id).then(
      (requested) => {
        if (requested) this.abortLocal(record.id, ENDINGS.cancelled);
      },
      (error: unknown) => logger.warn('could not check for an early cancel', { error }),
    );
    active.done = this.lifecycle(active, acquisition)
      .catch((error: unknown) => {
        logger.error('run lifecycle failed', { error });
      })
      .finally(() => this.active.delete(record.id));
  }

  private async lifecycle(run: ActiveRun, acquisition: Acquisition): Promise<void> {
    let permit: Permit | undefined;
    try {
      if (acquisition.kind === 'acquired') {
        permit = acquisition.permit;
      } else {
        run.context.emitSystem('status', { status: 'queued' });
        permit = await this.waitForSlot(run, acquisition.waiter);
        if (permit === undefined) return;
        const moved = await this.deps.runs.transition(run.record.id, 'queued', 'running');
        if (moved === null) return this.endElsewhere(run);
      }
      await this.execute(run);
    } finally {
      permit?.release();
    }
  }

  /** The permit, or undefined when the run ended while it waited (cancel, queue timeout, shutdown). */
  private async waitForSlot(run: ActiveRun, waiter: Waiter): Promise<Permit | undefined> {
    const { signal } = run.controller;
    const aborted = abortPromise(signal);
    try {
      return await Promise.race([waiter.granted, aborted.promise]);
    } catch (error) {
      if (!waiter.cancel()) {
        // Granted (or timed out) just as the abort came: give a granted permit straight back.
        waiter.granted.then((permit) => permit.release(), () => undefined);
      }
      const ending = error instanceof QueueTimeoutError ? ENDINGS.queueTimeout(error.waitedMs) : endingOf(signal);
      await this.finish(run, 'queued', ending);
      return undefined;
    } finally {
      aborted.dispose();
    }
  }

  private async execute(run: ActiveRun): Promise<void> {
    const { record, controller, context } = run;
    const agent = this.deps.agents.get(record.agent);
    const startedAt = Date.now();
    this.deps.observer.runStarted(record.agent);
    context.emitSystem('status', { status: 'running' });
    const timer = setTimeout(() => controller.abort(new RunAbort(ENDINGS.timedOut(record.timeoutMs))), record.timeoutMs);
    const aborted = abortPromise(controller.signal);
    let ending: RunEnding;
    try {
      // Promise.resolve().then(...) turns a synchronous throw into a rejection; the race
      // subscribes to the agent's promise, so a late rejection is never unhandled.
      await Promise.race([Promise.resolve().then(() => agent.run(context)), aborted.promise]);
      ending = controller.signal.aborted ? endingOf(controller.signal) : ENDINGS.completed;
    } catch (error) {
      ending = controller.signal.aborted ? endingOf(controller.signal) : ENDINGS.agentError(agentErrorMessage(error));
    } finally {
      clearTimeout(timer);
      aborted.dispose();
      context.closeToAgent();
    }
    // Whatever the agent still has in flight (a fetch, a timer) is told to stop.
    if (!controller.signal.aborted) controller.abort(new RunAbort(ending));
    await this.finish(run, 'running', ending);
    this.deps.observer.runEnded(record.agent, ending.status, Date.now() - startedAt);
  }

  /** Records the ending (retrying while the database is unreachable) and emits `error` and `end`. */
  private async finish(run: ActiveRun, from: ActiveStatus, ending: RunEnding): Promise<void> {
    const { context, record } = run;
    context.closeToAgent();
    const error = 'error' in ending ? ending.error : undefined;
    if (error !== undefined) context.emitSystem('error', error);
    for (let attempt = 1; ; attempt += 1) {
      try {
        const updated = await this.deps.runs.transition(record.id, from, ending.status, { error, output: context.output });
        if (updated === null) return await this.endElsewhere(run);
        break;
      } catch (cause) {
        if (!(cause instanceof DependencyUnavailableError) || attempt >= FINALIZE_ATTEMPTS) {
          context.logger.error('could not record the end of the run', { status: ending.status, error: cause });
          break;
        }
        await sleep(FINALIZE_BACKOFF_MS * 2 ** (attempt - 1));
      }
    }
    context.emitSystem('end', error === undefined ? { status: ending.status } : { status: ending.status, error });
    await this.archive(context);
    context.logger.info('run finished', { status: ending.status });
  }

  /** Another path already ended the run in the database: close its stream with that status. */
  private async endElsewhere(run: ActiveRun): Promise<void> {
    const current = await this.deps.runs.get(run.record.accountId, run.record.id);
    const status = current?.status ?? 'interrupted';
    run.context.closeToAgent();
    run.context.emitSystem('end', current?.error ? { status, error: current.error } : { status });
    await this.archive(run.context);
  }

  /** The run's events are archived completely at its end (the loop retries on failure). */
  private async archive(context: RunContext): Promise<void> {
    try {
      await this.deps.events.flushArchive();
    } catch (error) {
      context.logger.warn('archiving the run events failed; the archiver will retry', { error });
    }
  }
}

/** Gives a reservation back when admission did not create the run. */
function abandon(acquisition: Acquisition): void {
  if (acquisition.kind === 'acquired') {
    acquisition.permit.release();
  } else if (!acquisition.waiter.cancel()) {
    acquisition.waiter.granted.then((permit) => permit.release(), () => undefined);
  } else {
    acquisition.waiter.granted.catch(() => undefined); // rejected by cancel(): expected
  }
}

/** A promise that rejects when the signal aborts, and a dispose() that removes its listener. */
function abortPromise(signal: AbortSignal): { promise: Promise<never>; dispose: () => void } {
  let onAbort: () => void = () => undefined;
  const promise = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason as Error);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  promise.catch(() => undefined); // observed through the race; avoid an unhandled rejection when it loses
  return { promise, dispose: () => signal.removeEventListener('abort', onAbort) };
}

function agentErrorMessage(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.length > 500 ? `${text.slice(0, 500)}…` : text;
}
