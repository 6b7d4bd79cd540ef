import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { releaseAcquisition } from '../concurrency/acquire-permit.js';
import { withDeadline } from '../concurrency/deadline.js';
import { QueueFullError, type Acquisition, type FairSemaphore } from '../concurrency/fair-semaphore.js';
import type { Config } from '../config/config.js';
import type { InstanceRepository } from '../db/instance-repository.js';
import type { IdempotentMatch, RunRepository } from '../db/run-repository.js';
import {
  AccountConcurrencyLimitError,
  CapacityExhaustedError,
  DrainingError,
  ENDINGS,
  IdempotencyKeyReusedError,
  NotFoundError,
  SessionConcurrencyLimitError,
  isFinal,
  type ActiveStatus,
  type Agent,
  type AgentServicesFactory,
  type CancelBus,
  type Logger,
  type RunEnding,
  type RunRecord,
} from '../domain/index.js';
import type { EventLog } from '../streaming/event-log.js';
import type { AgentRegistry } from './agent-registry.js';
import type { LingeringAgents } from './lingering-agents.js';
import { requestHash, type RequestFields } from './request-hash.js';
import { RunExecution, type RunExecutionDeps, type RunObserver } from './run-execution.js';
import type { RunEndRecovery } from './run-end-recovery.js';
import { RunRecorder } from './run-recorder.js';
import { checkWebhookUrl, type WebhookPolicy } from './webhook-target.js';

/** A request for a run: what the client asked for (`timeoutMs` null: RUN_TIMEOUT_MS), for which account. */
export interface SubmitRequest extends RequestFields {
  readonly accountId: string;
  readonly idempotencyKey: string | null;
}

/** The `runs` section of the config this manager uses, and the instance it runs on. */
export type RunManagerOptions = Pick<
  Config['runs'],
  'tierLimits' | 'sessionMaxInflight' | 'timeoutMs' | 'maxEventsPerRun' | 'maxEventBytes' | 'eventBacklogBytes' | 'eventBacklogWaitMs'
> & {
  readonly instanceId: string;
  /** Whether runs may carry a webhook (WEBHOOK_SECRET is set) and where it may point; default: off. */
  readonly webhooks?: WebhookPolicy;
};

const RETRY_AFTER_S = 1;
/** How long POST /cancel waits for the run to reach its final status before answering. */
const CANCEL_WAIT_MS = 2_000;
const CANCEL_POLL_MIN_MS = 25;
const CANCEL_POLL_MAX_MS = 200;

/**
 * Admits runs and runs each as an async task behind the run slots (a RunExecution, which ends
 * it exactly once: completion, agent error, cancel, timeout, event limit, queue timeout or
 * shutdown); cancels them from any instance; drains them at shutdown.
 */
export class RunManager {
  private readonly active = new Map<string, RunExecution>();
  /** Admissions in flight, so shutdown waits for a run that is about to start. */
  private readonly admitting = new Set<Promise<unknown>>();
  private readonly recorder: RunRecorder;
  private readonly executions: RunExecutionDeps;
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
      /** Liveness of other instances, for a cancel of a run whose instance is gone. */
      readonly instances: Pick<InstanceRepository, 'isAlive'>;
      /** Writes the `end` of a run ended from here on another instance's behalf. */
      readonly ends: Pick<RunEndRecovery, 'writeEnds'>;
      readonly logger: Logger;
      readonly observer: RunObserver;
      readonly lingering: LingeringAgents;
      /** Each run's `ctx.llm` and `ctx.offload`. */
      readonly services: AgentServicesFactory;
      readonly options: RunManagerOptions;
    },
  ) {
    this.recorder = new RunRecorder(deps.transitions, deps.logger);
    const { runs, eventLog, observer, lingering, services, options } = deps;
    this.executions = {
      runs,
      services,
      recorder: this.recorder,
      eventLog,
      observer,
      lingering,
      maxEventsPerRun: options.maxEventsPerRun,
      maxEventBytes: options.maxEventBytes,
      eventBacklogBytes: options.eventBacklogBytes,
      eventBacklogWaitMs: options.eventBacklogWaitMs,
    };
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
  async submit(submitted: SubmitRequest): Promise<{ run: RunRecord; created: boolean }> {
    const agent = this.deps.agents.get(submitted.agent);
    const input = this.deps.agents.parseInput(agent, submitted.input);
    const { webhook } = submitted;
    const policy = this.deps.options.webhooks ?? { enabled: false, allowPrivate: false };
    const request = webhook === null || webhook === undefined ? submitted : { ...submitted, webhook: checkWebhookUrl(webhook, policy) };
    const admission = this.admitAndLaunch(request, agent, input);
    this.admitting.add(admission);
    try {
      return await admission;
    } finally {
      this.admitting.delete(admission);
    }
  }

  private async admitAndLaunch(request: SubmitRequest, agent: Agent, input: unknown): Promise<{ run: RunRecord; created: boolean }> {
    const { admissions, slots, options } = this.deps;
    // Only a request with a key can be repeated; the hash of a large input is not free.
    const hash = request.idempotencyKey === null ? null : requestHash(request);
    if (this.draining) return this.firstRunOr(request, hash, new DrainingError());
    const id = randomUUID();
    let acquisition: Acquisition;
    try {
      acquisition = slots.acquire(id, request.accountId);
    } catch (error) {
      if (error instanceof QueueFullError) return this.firstRunOr(request, hash, new CapacityExhaustedError(RETRY_AFTER_S));
      throw error;
    }
    const status: ActiveStatus = acquisition.kind === 'acquired' ? 'running' : 'queued';
    let admitted;
    try {
      admitted = await admissions.admit(
        {
          id,
          accountId: request.accountId,
          agent: agent.name,
          status,
          sessionId: request.sessionId,
          input: request.input === undefined ? null : request.input,
          model: request.model,
          metadata: request.metadata ?? null,
          timeoutMs: request.timeoutMs ?? options.timeoutMs,
          idempotencyKey: request.idempotencyKey,
          requestHash: hash,
          instanceId: options.instanceId,
          webhookUrl: request.webhook ?? null,
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
        this.deps.observer.runAdmitted(agent.name);
        this.launch(admitted.run, agent, input, acquisition);
        return { run: admitted.run, created: true };
      case 'existing':
      case 'key_reused':
        return firstRun(admitted);
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

  /**
   * A retried request (same Idempotency-Key, same body) gets its first run even when it would
   * be refused now; the same key with another body is refused as admission would.
   */
  private async firstRunOr(request: SubmitRequest, hash: string | null, refusal: Error): Promise<{ run: RunRecord; created: boolean }> {
    if (request.idempotencyKey !== null) {
      const match = await this.deps.runs.findByIdempotencyKey(request.accountId, request.idempotencyKey, hash);
      if (match !== null) return firstRun(match);
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
      local.abort(ENDINGS.cancelled); // no-op if it is already ending
      // Not final within the wait (the database is slow): answer with what it says now.
      await withDeadline(local.done, CANCEL_WAIT_MS, 'cancel').catch(() => undefined);
      return (await this.deps.runs.get(accountId, runId)) ?? local.record;
    }
    const record = await this.deps.runs.get(accountId, runId);
    if (record === null) throw new NotFoundError();
    if (isFinal(record.status)) return record;
    if (!(await this.deps.instances.isAlive(record.instanceId))) return this.cancelOrphan(record);
    await this.deps.cancelBus.request(runId);
    const deadline = Date.now() + CANCEL_WAIT_MS;
    for (let pollMs = CANCEL_POLL_MIN_MS; ; pollMs = Math.min(CANCEL_POLL_MAX_MS, pollMs * 2)) {
      const current = (await this.deps.runs.get(accountId, runId)) ?? record;
      if (isFinal(current.status) || Date.now() > deadline) return current;
      await sleep(pollMs);
    }
  }

  /**
   * Cancels a run whose instance is dead (or never beat), which nobody would hear the request
   * for: the status change and the `end` are written from here. Its instance, should it come
   * back, finds the run ended and stops its agent.
   */
  private async cancelOrphan(record: RunRecord): Promise<RunRecord> {
    const from = record.status as ActiveStatus;
    const cancelled = await this.recorder.transition(record.id, from, ENDINGS.cancelled.status);
    if (cancelled === null) return (await this.deps.runs.get(record.accountId, record.id)) ?? record; // it ended meanwhile
    this.deps.logger.info('cancelled a run whose instance is gone', { run_id: record.id, lost_instance_id: record.instanceId });
    await this.deps.ends.writeEnds([cancelled]);
    return cancelled;
  }

  /** Ids of the runs in progress on this instance. */
  localRunIds(): string[] {
    return [...this.active.keys()];
  }

  /** Stops the agents of local runs that another instance has ended (the database says so). */
  endedElsewhere(runIds: readonly string[]): void {
    for (const runId of runIds) this.abortLocal(runId, ENDINGS.instanceLost);
  }

  /** Aborts a run of this instance, if it is here and still going. */
  private abortLocal(runId: string, ending: RunEnding): void {
    this.active.get(runId)?.abort(ending);
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
      const settled = () =>
        withDeadline(all(), graceMs, 'runs ending').then(
          () => true,
          () => false,
        );
      if (await settled()) return;
      for (const run of this.active.values()) run.abort(ENDINGS.shutdown);
      // Endings still waiting for the database get one more grace period, then give up: a
      // restart with the same INSTANCE_ID ends what is left `interrupted`.
      if (!(await settled())) this.recorder.stop();
      await all();
    })();
    return this.shutdownPromise;
  }

  /** Registers an admitted run and starts it (waiting for a slot first if it is queued). */
  private launch(record: RunRecord, agent: Agent, input: unknown, acquisition: Acquisition): void {
    const execution = new RunExecution(record, agent, input, this.executions, this.deps.logger);
    this.active.set(record.id, execution);
    // A cancel requested on another instance before this run was registered here.
    if (this.deps.cancelBus.heardBefore(record.id)) execution.abort(ENDINGS.cancelled);
    void execution.start(acquisition).finally(() => this.active.delete(record.id)); // start() never rejects
  }
}

/** The answer to a repeated Idempotency-Key: its first run, or 422 when the body differs. */
function firstRun(match: IdempotentMatch): { run: RunRecord; created: boolean } {
  if (match.outcome === 'key_reused') throw new IdempotencyKeyReusedError();
  return { run: match.run, created: false };
}
