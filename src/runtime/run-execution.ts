import { abortPromise } from '../concurrency/abort-promise.js';
import { awaitGrant } from '../concurrency/acquire-permit.js';
import { QueueTimeoutError, type Acquisition, type Permit, type Waiter } from '../concurrency/fair-semaphore.js';
import type { RunRepository } from '../db/run-repository.js';
import {
  type AgentServicesFactory,
  ENDINGS,
  RunAbort,
  RunFailure,
  endingOf,
  type ActiveStatus,
  type Agent,
  type Logger,
  type RunEnding,
  type RunRecord,
} from '../domain/index.js';
import type { EventLog } from '../streaming/event-log.js';
import type { LingeringAgents } from './lingering-agents.js';
import { RunContext } from './run-context.js';
import type { RunRecorder } from './run-recorder.js';

/** Observers of runs (metrics); kept narrow so the runtime knows nothing of prom-client. */
export interface RunObserver {
  /** A run was admitted on this instance (queued or running). */
  runAdmitted(agent: string): void;
  /** A run got its slot after waiting `queueWaitMs` (0 when one was free at admission). */
  runStarted(agent: string, queueWaitMs: number): void;
  /**
   * This instance ended the run, or found it ended elsewhere: its final status, its error code
   * (null when none), and how long it ran (null when it never ran), in ms.
   */
  runFinished(agent: string, status: string, errorCode: string | null, runningMs: number | null): void;
}

/** What every execution of this instance shares. */
export interface RunExecutionDeps {
  readonly runs: Pick<RunRepository, 'get'>;
  readonly recorder: RunRecorder;
  readonly eventLog: EventLog;
  readonly observer: RunObserver;
  readonly lingering: LingeringAgents;
  readonly services: AgentServicesFactory;
  readonly maxEventsPerRun: number;
  readonly maxEventBytes: number;
  readonly eventBacklogBytes: number;
  readonly eventBacklogWaitMs: number;
}

/**
 * The reason of every run that completed: nobody reads it any more, so one instance serves
 * them all (the signal still fires, for whatever the agent left in flight).
 */
const RUN_ENDED = new RunAbort(ENDINGS.completed);

/**
 * One run on this instance, from its admission to its `end`: waits for a slot if it was
 * queued, runs its agent raced against abort and its timeout, and records exactly one
 * ending, then emits `error` and `end`. The slot permit is released in `finally` on every
 * path; an agent that ignores its AbortSignal is raced, so its run still ends.
 */
export class RunExecution {
  readonly controller = new AbortController();
  readonly context: RunContext;
  /** Settles once the run has ended (or could not be ended); never rejects. Set by start(). */
  done: Promise<void> = Promise.resolve();
  /** Its status in the database, as this instance last wrote it. */
  private status: ActiveStatus;
  /** Its `end` event was emitted. */
  private ended = false;
  private readonly logger: Logger;
  /** When this instance admitted it (Date.now()), for its wait in the queue. */
  private readonly admittedAtMs = Date.now();
  /** How long it waited for a slot: 0 when it got one at admission. */
  private queueWaitMs = 0;
  /** When its agent started (Date.now()); undefined until it runs. */
  private runningSinceMs: number | undefined;
  /** What the agent threw, when it failed the run by throwing. */
  private agentFailure: { readonly error: unknown } | undefined;

  constructor(
    readonly record: RunRecord,
    private readonly agent: Agent,
    input: unknown,
    private readonly deps: RunExecutionDeps,
    logger: Logger,
  ) {
    this.status = record.status as ActiveStatus;
    this.logger = logger.child({ run_id: record.id, account_id: record.accountId, agent: record.agent });
    const { controller } = this;
    this.context = new RunContext({
      runId: record.id,
      input,
      model: record.model,
      sessionId: record.sessionId,
      signal: controller.signal,
      logger: this.logger,
      services: deps.services({
        runId: record.id,
        agent: record.agent,
        model: record.model,
        signal: controller.signal,
        logger: this.logger,
      }),
      eventLog: deps.eventLog,
      maxEvents: deps.maxEventsPerRun,
      maxEventBytes: deps.maxEventBytes,
      backlogBytes: deps.eventBacklogBytes,
      backlogWaitMs: deps.eventBacklogWaitMs,
      onEventLimit: (message) => controller.abort(new RunAbort(ENDINGS.eventLimit(message))),
      onEventBacklog: (detail) => {
        this.logger.warn('run failed: its events could not be written within its memory bound', { detail });
        this.abort(ENDINGS.eventBacklog(detail));
      },
    });
  }

  /**
   * Starts the run with its slot, or its place in the slots' queue; returns `done`. Call once.
   * Every line logged while it runs (by its agent or the runtime) carries its run and account.
   */
  start(acquisition: Acquisition): Promise<void> {
    const context = { run_id: this.record.id, account_id: this.record.accountId };
    this.done = this.logger.withContext(context, () =>
      this.lifecycle(acquisition)
        .catch(async (error: unknown) => {
          this.logger.error('run lifecycle failed', { error });
          await this.finish(this.status, ENDINGS.internal('The run failed inside agentd; it was logged.'));
        })
        .catch((error: unknown) => {
          this.logger.error('could not end the run after a failure', { error });
        }),
    );
    return this.done;
  }

  /** Aborts the run with this ending, unless it is already ending. */
  abort(ending: RunEnding): void {
    if (!this.controller.signal.aborted) this.controller.abort(new RunAbort(ending));
  }

  private async lifecycle(acquisition: Acquisition): Promise<void> {
    let permit: Permit | undefined;
    try {
      if (acquisition.kind === 'acquired') {
        permit = acquisition.permit;
      } else {
        this.context.emitSystem('status', { status: 'queued' });
        permit = await this.waitForSlot(acquisition.waiter);
        if (permit === undefined) return;
        const moved = await this.deps.recorder.transition(this.record.id, 'queued', 'running');
        this.queueWaitMs = Date.now() - this.admittedAtMs;
        if (moved === null) return this.endElsewhere();
        this.status = 'running';
      }
      this.deps.observer.runStarted(this.record.agent, this.queueWaitMs);
      await this.execute();
    } finally {
      permit?.release();
    }
  }

  /** The permit, or undefined when the run ended while it waited (cancel, queue timeout, shutdown). */
  private async waitForSlot(waiter: Waiter): Promise<Permit | undefined> {
    try {
      return await awaitGrant(waiter, this.controller.signal);
    } catch (error) {
      const ending = error instanceof QueueTimeoutError ? ENDINGS.queueTimeout(error.waitedMs) : endingOf(this.controller.signal);
      await this.finish('queued', ending);
      return undefined;
    }
  }

  private async execute(): Promise<void> {
    const { record, controller, context } = this;
    this.runningSinceMs = Date.now();
    context.emitSystem('status', { status: 'running' });
    const timer = setTimeout(() => controller.abort(new RunAbort(ENDINGS.timedOut(record.timeoutMs))), record.timeoutMs);
    const aborted = abortPromise(controller.signal);
    let ending: RunEnding;
    // Promise.resolve().then(...) turns a synchronous throw into a rejection; the race
    // subscribes to the agent's promise, so a late rejection is never unhandled.
    const task = Promise.resolve().then(() => this.agent.run(context));
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
      if (!controller.signal.aborted) this.agentFailure = { error };
    } finally {
      clearTimeout(timer);
      aborted.dispose();
      context.closeToAgent();
    }
    // Whatever the agent still has in flight (a fetch, a timer) is told to stop.
    if (!controller.signal.aborted) controller.abort(RUN_ENDED);
    if (!taskSettled) this.deps.lingering.watch(task);
    await this.finish('running', ending);
  }

  /**
   * Records the ending (waiting out a database outage), then emits `error` and `end`: the
   * stream's `end` never says more than the database does.
   */
  private async finish(from: ActiveStatus, ending: RunEnding): Promise<void> {
    const { context, record } = this;
    if (this.ended) return;
    context.closeToAgent();
    const error = 'error' in ending ? ending.error : undefined;
    let updated: RunRecord | null;
    try {
      updated = await this.deps.recorder.transition(record.id, from, ending.status, { error, output: context.output });
    } catch (cause) {
      this.logger.error('could not record the end of the run; a restart with this INSTANCE_ID ends it', {
        status: ending.status,
        error: cause,
      });
      return;
    }
    if (updated === null) return this.endElsewhere();
    this.ended = true;
    this.observeEnd(ending.status, error?.code ?? null);
    if (error !== undefined) context.emitSystem('error', error);
    context.emitSystem('end', error === undefined ? { status: ending.status } : { status: ending.status, error });
    await this.archive();
    this.logFinished(ending.status, error?.code);
  }

  /**
   * The one line of a finished run: status, error code, its wait in the queue and how long it
   * ran (0 when it never did), in ms; at warn with the agent's error and stack when the agent
   * threw (never the run's input).
   */
  private logFinished(status: string, errorCode: string | undefined, elsewhere = false): void {
    const now = Date.now();
    const line = {
      status,
      ...(errorCode === undefined ? {} : { error_code: errorCode }),
      queue_wait_ms: this.runningSinceMs === undefined && this.status === 'queued' ? now - this.admittedAtMs : this.queueWaitMs,
      duration_ms: this.runningSinceMs === undefined ? 0 : now - this.runningSinceMs,
      ...(elsewhere ? { ended_by: 'another instance' } : {}),
    };
    if (this.agentFailure === undefined) this.logger.info('run finished', line);
    else this.logger.warn('run finished', { ...line, error: this.agentFailure.error });
  }

  /**
   * Another path already ended the run in the database (a cancel or sweep from another
   * instance, which writes the `end` itself): close its stream with that status, unless the
   * archive holds its `end` already.
   */
  private async endElsewhere(): Promise<void> {
    const current = await this.deps.runs.get(this.record.accountId, this.record.id);
    const status = current?.status ?? 'interrupted';
    this.ended = true;
    this.observeEnd(status, current?.error?.code ?? null);
    this.context.closeToAgent();
    this.logFinished(status, current?.error?.code, true);
    // Unknown (the database is away): write it; a second `end` is harmless to readers, a missing one is not.
    if (await this.deps.eventLog.hasEnd(this.record.id).catch(() => false)) return;
    this.context.emitSystem('end', current?.error ? { status, error: current.error } : { status });
    await this.archive();
  }

  private observeEnd(status: string, errorCode: string | null): void {
    const runningMs = this.runningSinceMs === undefined ? null : Date.now() - this.runningSinceMs;
    this.deps.observer.runFinished(this.record.agent, status, errorCode, runningMs);
  }

  /** The run's events are archived completely at its end (the loop retries on failure). */
  private async archive(): Promise<void> {
    try {
      await this.deps.eventLog.flushArchive();
    } catch (error) {
      this.logger.warn('archiving the run events failed; the archiver will retry', { error });
    }
  }
}

function agentErrorMessage(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.length > 500 ? `${text.slice(0, 500)}…` : text;
}
