import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AgentRegistry } from './agent-registry.js';
import { abortPromise } from '../concurrency/abort-promise.js';
import { awaitGrant, releaseAcquisition } from '../concurrency/acquire-permit.js';
import { withDeadline } from '../concurrency/deadline.js';
import { type Acquisition, FairSemaphore, type Permit, QueueFullError, QueueTimeoutError, type Waiter } from '../concurrency/fair-semaphore.js';
import type { Config } from '../config/config.js';
import { AccountConcurrencyLimitError, type ActiveStatus, type CancelBus, CapacityExhaustedError, DrainingError, endingOf, ENDINGS, isFinal, type Logger, NotFoundError, RunAbort, type RunEnding, RunFailure, type RunRecord, SessionConcurrencyLimitError } from '../domain/index.js';
import type { RunRepository } from '../db/run-repository.js';
import type { EventLog } from '../streaming/event-log.js';
import type { LingeringAgents } from './lingering-agents.js';
import { RunContext } from './run-context.js';
import { RunRecorder } from './run-recorder.js';

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

/** The `runs` section of the config this manager uses, and the instance it runs on. */
export type RunManagerOptions = Pick<Config['runs'], 'tierLimits' | 'sessionMaxInflight' | 'timeoutMs' | 'maxEventsPerRun' | 'maxEventBytes'> & {
  readonly instanceId: string;
};

/** Observers of run endings (metrics); kept narrow so the manager knows nothing of prom-client. */
export interface RunObserver {
  runStarted(agent: string): void;
  runEnded(agent: string, status: string, durationMs: number): void;
}

interface ActiveRun {
  readonly record: RunRecord;
  readonly controller: AbortController;
  readonly context: RunContext;
  /** Its status in the database, as this instance last wrote it. */
  status: ActiveStatus;
  /** Its `end` event was emitted. */
  ended: boolean;
  done: Promise<void>;
}

const RETRY_AFTER_S = 1;
/** How long POST /cancel waits for the run to reach its final status before answering. */
const CANCEL_WAIT_MS = 2_000;
const CANCEL_POLL_MIN_MS = 25;
const CANCEL_POLL_MAX_MS = 200;

/**
 * Admits runs, runs them as async tasks behind the run slots, and ends each exactly once:
 * completion, agent error, cancel, timeout, event limit, queue timeout or shutdown. The slot
 * permit is released in `finally` on every path; an agent that ignores its AbortSignal is
 * raced, so its run still ends and frees its slot.
 */
export class RunManager {
  private readonly active = new Map<string, ActiveRun>();
  /** Admissions in flight, so shutdown waits for a run that is about to start. */
  private readonly admitting = new Set<Promise<unknown>>();
  private readonly recorder: RunRecorder;
  private readonly runEnded = new RunAbort(ENDINGS.completed);
  private draining = false;
  private shutdownPromise: Promise<void> | undefined;

  constructor(
    private readonly deps: {
      readonly runs: RunRepository;
      /** Admissions and status changes are written through these (batchers over `runs`). */
      readonly admissions: Pick<RunRepository, 'admit'>;
      readonly transitions: Pick<RunRepository, 'transition'>;
      readonly slots: FairSemaphore;
      readonly agents: AgentRegistry;
      readonly eventLog: EventLog;
      readonly cancelBus: CancelBus;
      readonly logger: Logger;
      readonly observer: RunObserver;
      readonly lingering: LingeringAgents;
      readonly options: RunManagerOptions;
    },
  ) {
    this.recorder = new RunRecorder(deps.transitions, deps.logger);
  }

  /** Starts hearing cancel requests for this instance's runs (from any instance). */
  start(): void {
    this.deps.cancelBus.onRequest(
      (runId) => this.abortLocal(runId, ENDINGS.cancelled),
      () => this.active.keys(),
    );
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
    const agent = this.deps.agents.get(request.agent);
    const input = this.deps.agents.parseInput(agent, request.input);
    const admission = this.admitAndLaunch(request, agent.name, input);
    this.admitting.add(admission);
    try {
      return await admission;
    } finally {
      this.admitting.delete(admission);
    }
  }

  private async admitAndLaunch(request: SubmitRequest, agent: string, input: unknown): Promise<{ run: RunRecord; created: boolean }> {
    const { admissions, slots, options } = this.deps;
    if (this.draining) return this.firstRunOr(request, new DrainingError());
    const id = randomUUID();
    let acquisition: Acquisition;
    try {
      acquisition = slots.acquire(id, request.accountId);
    } catch (error) {
      if (error instanceof QueueFullError) return this.firstRunOr(request, new CapacityExhaustedError(RETRY_AFTER_S));
      throw error;
    }
    const status: ActiveStatus = acquisition.kind === 'acquired' ? 'running' : 'queued';
    let admitted;
    try {
      admitted = await admissions.admit(
        {
          id,
          accountId: request.accountId,
          agent,
          status,
          sessionId: request.sessionId,
          input: request.input === undefined ? null : request.input,
          model: request.model,
          metadata: request.metadata ?? null,
          timeoutMs: request.timeoutMs ?? options.timeoutMs,
          idempotencyKey: request.idempotencyKey,
          instanceId: options.instanceId,
        },
        options.tierLimits,
        options.sessionMaxInflight,
      );
    } catch (error) {
      releaseAcquisition(acquisition);
      throw error;
    }
    if (admitted.outcome !== 'created') releaseAcquisition(acquisition);
    switch (admitted.outcome) {
      case 'created':
        this.launch(admitted.run, input, acquisition);
        return { run: admitted.run, created: true };
      case 'existing':
        return { run: admitted.run, created: false };
      case 'account_limit':
        throw new AccountConcurrencyLimitError(admitted.limit, admitted.active);
      case 'session_limit':
        throw new SessionConcurrencyLimitError(admitted.limit, admitted.active);
      case 'no_account':
        throw new NotFoundError('The account of this key no longer exists.');
      default: {
        const unreachable: never = admitted;
        throw new Error(`unexpected admission ${JSON.stringify(unreachable)}`);
      }
    }
  }

  /** A retried request (same Idempotency-Key) gets its first run even when it would be refused now. */
  private async firstRunOr(request: SubmitRequest, refusal: Error): Promise<{ run: RunRecord; created: boolean }> {
    if (request.idempotencyKey !== null) {
      const run = await this.deps.runs.findByIdempotencyKey(request.accountId, request.idempotencyKey);
      if (run !== null) return { run, created: false };
    }
    throw refusal;
  }

  /**
   * Cancels a run of the account: fires its AbortSignal (here, or on the instance running it)
   * and waits briefly for its final status. Idempotent; a finished run is returned unchanged.
   */
  async cancel(accountId: string, runId: string): Promise<RunRecord> {
    const local = this.active.get(runId);
    if (local !== undefined && local.record.accountId === accountId) {
      local.controller.abort(new RunAbort(ENDINGS.cancelled)); // no-op if it is already ending
      // Not final within the wait (the database is slow): answer with what it says now.
      await withDeadline(local.done, CANCEL_WAIT_MS, 'cancel').catch(() => undefined);
      return (await this.deps.runs.get(accountId, runId)) ?? local.record;
    }
    const record = await this.deps.runs.get(accountId, runId);
    if (record === null) throw new NotFoundError();
    if (isFinal(record.status)) return record;
    await this.deps.cancelBus.request(runId);
    const deadline = Date.now() + CANCEL_WAIT_MS;
    for (let pollMs = CANCEL_POLL_MIN_MS; ; pollMs = Math.min(CANCEL_POLL_MAX_MS, pollMs * 2)) {
      const current = (await this.deps.runs.get(accountId, runId)) ?? record;
      if (isFinal(current.status) || Date.now() > deadline) return current;
      await sleep(pollMs);
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
      await Promise.allSettled([...this.admitting]);
      const all = () => Promise.all([...this.active.values()].map((run) => run.done));
      const settled = () => withDeadline(all(), graceMs, 'runs ending').then(() => true, () => false);
      if (await settled()) return;
      for (const run of this.active.values()) run.controller.abort(new RunAbort(ENDINGS.shutdown));
      // Endings still waiting for the database get one more grace period, then give up: a
      // restart with the same INSTANCE_ID ends what is left `interrupted`.
      if (!(await settled())) this.recorder.stop();
      await all();
    })();
    return this.shutdownPromise;
  }

  /** Registers an admitted run and starts its lifecycle (waiting for a slot first if it is queued). */
  private launch(record: RunRecord, input: unknown, acquisition: Acquisition): void {
    const controller = new AbortController();
    const logger = this.deps.logger.child({ runId: record.id, agent: record.agent });
    const context = new RunContext({
      runId: record.id,
      input,
      model: record.model,
      sessionId: record.sessionId,
      signal: controller.signal,
      logger,
      eventLog: this.deps.eventLog,
      maxEvents: this.deps.options.maxEventsPerRun,
      maxEventBytes: this.deps.options.maxEventBytes,
      onEventLimit: (message) => controller.abort(new RunAbort(ENDINGS.eventLimit(message))),
    });
    const active: ActiveRun = { record, controller, context, status: record.status as ActiveStatus, ended: false, done: Promise.resolve() };
    this.active.set(record.id, active);
    // A cancel requested on another instance before this run was registered here.
    if (this.deps.cancelBus.heardBefore(record.id)) controller.abort(new RunAbort(ENDINGS.cancelled));
    active.done = this.lifecycle(active, acquisition)
      .catch(async (error: unknown) => {
        logger.error('run lifecycle failed', { error });
        await this.finish(active, active.status, ENDINGS.internal('The run failed inside agentd; it was logged.'));
      })
      .catch((error: unknown) => {
        logger.error('could not end the run after a failure', { error });
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
        const moved = await this.recorder.transition(run.record.id, 'queued', 'running');
        if (moved === null) return this.endElsewhere(run);
        run.status = 'running';
      }
      await this.execute(run);
    } finally {
      permit?.release();
    }
  }

  /** The permit, or undefined when the run ended while it waited (cancel, queue timeout, shutdown). */
  private async waitForSlot(run: ActiveRun, waiter: Waiter): Promise<Permit | undefined> {
    try {
      return await awaitGrant(waiter, run.controller.signal);
    } catch (error) {
      const ending = error instanceof QueueTimeoutError ? ENDINGS.queueTimeout(error.waitedMs) : endingOf(run.controller.signal);
      await this.finish(run, 'queued', ending);
      return undefined;
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
    // Promise.resolve().then(...) turns a synchronous throw into a rejection; the race
    // subscribes to the agent's promise, so a late rejection is never unhandled.
    const task = Promise.resolve().then(() => agent.run(context));
    let taskSettled = false;
    const settled = () => {
      taskSettled = true;
    };
    task.then(settled, settled);
    try {
      await Promise.race([task, aborted.promise]);
      ending = controller.signal.aborted ? endingOf(controller.signal) : ENDINGS.completed;
    } catch (error) {
      if (controller.signal.aborted) ending = endingOf(controller.signal);
      else if (error instanceof RunFailure) ending = ENDINGS.failure(error.runErrorCode, agentErrorMessage(error));
      else ending = ENDINGS.agentError(agentErrorMessage(error));
    } finally {
      clearTimeout(timer);
      aborted.dispose();
      context.closeToAgent();
    }
    // Whatever the agent still has in flight (a fetch, a timer) is told to stop. The reason is
    // shared: nobody reads it any more, so one instance serves every completed run.
    if (!controller.signal.aborted) controller.abort(this.runEnded);
    if (!taskSettled) this.deps.lingering.watch(task);
    await this.finish(run, 'running', ending);
    this.deps.observer.runEnded(record.agent, ending.status, Date.now() - startedAt);
  }

  /**
   * Records the ending (waiting out a database outage), then emits `error` and `end`: the
   * stream's `end` never says more than the database does.
   */
  private async finish(run: ActiveRun, from: ActiveStatus, ending: RunEnding): Promise<void> {
    const { context, record } = run;
    if (run.ended) return;
    context.closeToAgent();
    const error = 'error' in ending ? ending.error : undefined;
    let updated: RunRecord | null;
    try {
      updated = await this.recorder.transition(record.id, from, ending.status, { error, output: context.output });
    } catch (cause) {
      context.logger.error('could not record the end of the run; a restart with this INSTANCE_ID ends it', {
        status: ending.status,
        error: cause,
      });
      return;
    }
    if (updated === null) return this.endElsewhere(run);
    run.ended = true;
    if (error !== undefined) context.emitSystem('error', error);
    context.emitSystem('end', error === undefined ? { status: ending.status } : { status: ending.status, error });
    await this.archive(context);
    context.logger.info('run finished', { status: ending.status });
  }

  /** Another path already ended the run in the database: close its stream with that status. */
  private async endElsewhere(run: ActiveRun): Promise<void> {
    const current = await this.deps.runs.get(run.record.accountId, run.record.id);
    const status = current?.status ?? 'interrupted';
    run.ended = true;
    run.context.closeToAgent();
    run.context.emitSystem('end', current?.error ? { status, error: current.error } : { status });
    await this.archive(run.context);
  }

  /** The run's events are archived completely at its end (the loop retries on failure). */
  private async archive(context: RunContext): Promise<void> {
    try {
      await this.deps.eventLog.flushArchive();
    } catch (error) {
      context.logger.warn('archiving the run events failed; the archiver will retry', { error });
    }
  }
}

function agentErrorMessage(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.length > 500 ? `${text.slice(0, 500)}…` : text;
}
