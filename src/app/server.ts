import type { Registry } from 'prom-client';
import { detectMachine, type DetectedMachine } from '../concurrency/detect.js';
import { FairSemaphore } from '../concurrency/fair-semaphore.js';
import { autoOffloadThreads, OFFLOAD_QUEUE_PER_THREAD, OffloadPool } from '../concurrency/offload-pool.js';
import { sizeRunSlots, type Limit, type RunSlotsBound } from '../concurrency/sizing.js';
import type { Config } from '../config/config.js';
import { AccountRepository } from '../db/account-repository.js';
import { AdmissionBatcher } from '../db/admission-batcher.js';
import type { Database } from '../db/database.js';
import { EventArchiveRepository } from '../db/event-archive-repository.js';
import { InstanceRepository } from '../db/instance-repository.js';
import { migrate } from '../db/migrations.js';
import { RetentionRepository } from '../db/retention-repository.js';
import { RunRepository } from '../db/run-repository.js';
import { TransitionBatcher } from '../db/transition-batcher.js';
import { WebhookRepository } from '../db/webhook-repository.js';
import type { Agent, Logger } from '../domain/index.js';
import { createApp } from '../http/app.js';
import { runView } from '../http/run-view.js';
import { LlmLimiters } from '../llm/llm-limiters.js';
import { CapacityReport, type LimitTable } from '../observability/capacity-report.js';
import { ClusterMetricsWorker, primaryChannel } from '../observability/cluster-metrics.js';
import { createMetrics } from '../observability/metrics.js';
import { sizingSummary } from '../observability/sizing-summary.js';
import { AgentRegistry } from '../runtime/agent-registry.js';
import { InstanceHeartbeat } from '../runtime/instance-heartbeat.js';
import { LingeringAgents } from '../runtime/lingering-agents.js';
import { RunEndRecovery } from '../runtime/run-end-recovery.js';
import { Retention } from '../runtime/retention.js';
import { RunManager } from '../runtime/run-manager.js';
import { WebhookDispatcher, type WebhookObserver } from '../runtime/webhook-dispatcher.js';
import { EventArchiver } from '../streaming/event-archiver.js';
import { EventLog } from '../streaming/event-log.js';
import { Followers } from '../streaming/followers.js';
import { openStreamBackend, type StreamBackend } from '../streaming/stream-backend.js';
import { agentServices, builtInAgents, createGateway } from './agents.js';
import { readBuildInfo } from './build-info.js';
import { Lifecycle } from './lifecycle.js';
import { limitTable } from './limit-table.js';
import { listenOnPort, serveFromPrimary } from './http-listener.js';
import { loadAgentsDir, refuseAgentsDirInSingleExecutable } from './load-agents.js';
import { openDatabase } from './open-database.js';

export interface RunningServer {
  readonly url: string;
  readonly instanceId: string;
  readonly limits: LimitTable;
  /** Graceful shutdown in reverse order of start-up; idempotent. */
  close(): Promise<void>;
}

/** What start-up sizes before anything opens: run slots, their wait queue, LLM requests in flight, processes. */
interface Sizing {
  readonly processes: number;
  readonly runSlots: Limit;
  /** What bounded the run slots (the capacity view's `sizing.run_slots.bound_by`). */
  readonly runSlotsBound: RunSlotsBound;
  readonly queueMax: Limit;
  readonly llmInflight: Limit;
  readonly offloadThreads: Limit;
  readonly offloadQueueMax: Limit;
}

function sizeInstance(config: Config, machine: DetectedMachine): Sizing {
  // A cluster worker sizes its share of the machine; explicit limits are per process.
  const processes = config.worker?.count ?? 1;
  const { boundBy, ...runSlots } = sizeRunSlots(
    machine.effective,
    config.runs.memoryPerRunMb,
    config.runs.maxConcurrentAgentRuns,
    processes,
  );
  const orSlots = (value: number | undefined): Limit =>
    value === undefined ? { value: runSlots.value, source: 'auto' } : { value, source: 'env' };
  const { offloadThreads, offloadQueueMax } = config.agents;
  const threads: Limit =
    offloadThreads === undefined
      ? { value: autoOffloadThreads(machine.effective.cpus), source: 'auto' }
      : { value: offloadThreads, source: 'env' };
  return {
    processes,
    runSlots,
    runSlotsBound: boundBy,
    queueMax: orSlots(config.runs.queueMax),
    llmInflight: orSlots(config.llm.globalMaxInflight),
    offloadThreads: threads,
    offloadQueueMax:
      offloadQueueMax === undefined
        ? { value: threads.value * OFFLOAD_QUEUE_PER_THREAD, source: 'auto' }
        : { value: offloadQueueMax, source: 'env' },
  };
}

/** Ends a restarted instance's leftover runs `interrupted`, each with its `end` event. */
async function interruptLeftovers(instanceId: string, ends: RunEndRecovery, logger: Logger): Promise<void> {
  const count = await ends.interruptInstance(instanceId);
  if (count > 0) logger.warn('ended leftover runs of this instance as interrupted', { count });
}

/** The event log over the stream backend's store and the Postgres archive, with its archiver started. */
function startEventLog(settings: Config['events'], db: Database, streams: StreamBackend, lifecycle: Lifecycle, logger: Logger) {
  const archive = new EventArchiveRepository(db);
  const archiver = new EventArchiver({
    repository: archive,
    intervalMs: settings.archiveFlushMs,
    onError: (error) => logger.error('archiving events failed; will retry', { error }),
    onRejected: (runId, error) => logger.error('the archive refused an event; it was skipped', { run_id: runId, error }),
  });
  lifecycle.add('event archiver', archiver).start();
  const eventLog = new EventLog({
    store: streams.store,
    archiver,
    archive,
    onError: (error) => logger.warn('event read failed', { error }),
    // Catch-up pages from the archive take at most half the pool, so that runs still get theirs.
    archiveReadConcurrency: Math.max(1, Math.floor(db.stats().max / 2)),
  });
  return { eventLog, archiver };
}

/**
 * Delivers the webhooks of ended runs, whichever instance ran them, when WEBHOOK_SECRET is set
 * (without it no run carries one, and this instance delivers none). The body is the run's
 * record as GET /v1/runs/:id shows it, without the delivery's own state.
 */
async function startWebhooks(config: Config, db: Database, lifecycle: Lifecycle, logger: Logger, observer: WebhookObserver) {
  const { secret, ...settings } = config.webhooks;
  if (secret === undefined) return;
  const dispatcher = new WebhookDispatcher({
    instanceId: config.instanceId,
    settings: { ...settings, key: secret },
    deliveries: new WebhookRepository(db),
    render: (run) => JSON.stringify(runView({ ...run, webhook: undefined })),
    logger,
    observer,
  });
  await dispatcher.start();
  lifecycle.add('webhook deliveries', dispatcher);
}

/** The run slots and the LLM request limiters, as sized. */
function createLimiters(config: Config, sizing: Sizing): { slots: FairSemaphore; llm: LlmLimiters } {
  const slots = new FairSemaphore({
    capacity: sizing.runSlots.value,
    queueMax: sizing.queueMax.value,
    queueTimeoutMs: config.runs.queueTimeoutMs,
  });
  // An LLM request waits for its permits at most as long as a request may take (LLM_TIMEOUT_MS).
  const llm = new LlmLimiters({
    globalLimit: sizing.llmInflight.value,
    providers: new Map(config.llm.providers.map((p) => [p.name, p.maxInFlight])),
    queueMax: sizing.runSlots.value,
    queueTimeoutMs: config.llm.timeoutMs,
  });
  return { slots, llm };
}

/** What start-up opened and sized before the runs are wired. */
interface AssembleDeps {
  readonly db: Database;
  readonly streams: StreamBackend;
  readonly sizing: Sizing;
  readonly machine: DetectedMachine;
  readonly limits: LimitTable;
  readonly lifecycle: Lifecycle;
  readonly logger: Logger;
  /** Agents given in code (createRuntime), besides the built-in ones and AGENTS_DIR's. */
  readonly agents: readonly Agent[];
}

/** The parts of the runs the HTTP app serves and reports on. */
interface RunParts {
  readonly runs: RunRepository;
  readonly instances: InstanceRepository;
  readonly eventLog: EventLog;
  readonly archiver: EventArchiver;
  readonly slots: FairSemaphore;
  readonly llm: LlmLimiters;
  readonly listeners: Followers;
  readonly lingering: LingeringAgents;
  readonly metrics: ReturnType<typeof createMetrics>;
  readonly agents: AgentRegistry;
  readonly manager: RunManager;
}

/** The HTTP app of the contract over the runs, with the capacity view and metrics. */
function httpApp(config: Config, deps: AssembleDeps, parts: RunParts): ReturnType<typeof createApp> {
  const { db, streams, logger } = deps;
  const { runs, instances, eventLog, archiver, slots, llm, listeners, lingering, metrics, agents, manager } = parts;
  const capacity = new CapacityReport({
    instanceId: config.instanceId,
    machine: deps.machine,
    sizing: { runSlots: deps.sizing.runSlots.value, boundBy: deps.sizing.runSlotsBound, processes: deps.sizing.processes },
    limits: deps.limits,
    slots,
    db,
    runs,
    instances,
    store: streams.store,
    archiver,
    eventLog,
    listeners,
    lingering,
    llm,
    tierLimits: config.runs.tierLimits,
    sessionMaxInflight: config.runs.sessionMaxInflight,
  });
  const app = createApp({
    logger,
    db,
    store: streams.store,
    eventLog,
    listeners,
    accounts: new AccountRepository(db),
    runs,
    manager,
    agents,
    capacity,
    metrics: metricsSource(config, deps, metrics.registry),
    http: metrics.http,
    settings: {
      ...config.server,
      ...config.sse,
      maxRunTimeoutMs: config.runs.maxTimeoutMs,
      queueTimeoutMs: config.runs.queueTimeoutMs,
      tierLimits: config.runs.tierLimits,
    },
  });
  return app;
}

/**
 * What GET /metrics answers: this process's registry, or in a cluster worker the sum over
 * every worker, gathered through the primary.
 */
function metricsSource(config: Config, deps: AssembleDeps, registry: Registry) {
  if (config.worker === null) return registry;
  const onError = (error: unknown) => deps.logger.warn('a cluster metrics message could not be sent', { error });
  return deps.lifecycle.add('cluster metrics', new ClusterMetricsWorker(registry, primaryChannel(), { onError })).start();
}

/** The parts a running instance is made of, for the HTTP app and shutdown. */
interface Runtime {
  readonly manager: RunManager;
  readonly app: ReturnType<typeof createApp>;
}

/**
 * Wires the runs: repositories, the event log and its archiver, the group-commit batchers,
 * the run slots, the LLM limiters and agents, the run manager, metrics, capacity and the
 * HTTP app. Everything that needs closing is added to `lifecycle` once started.
 */
async function assemble(config: Config, deps: AssembleDeps): Promise<Runtime> {
  const { db, streams, sizing, lifecycle, logger } = deps;
  const runs = new RunRepository(db);
  const { eventLog, archiver } = startEventLog(config.events, db, streams, lifecycle, logger);
  const ends = new RunEndRecovery({ runs, eventLog, logger });
  await interruptLeftovers(config.instanceId, ends, logger);
  const instances = new InstanceRepository(db);

  const onBatchRefused = (what: string) => (error: unknown, batchSize: number) =>
    logger.warn(`the database refused a batch of ${what}; retrying them one at a time`, { error, batch_size: batchSize });
  const admissions = lifecycle.add('admissions', new AdmissionBatcher({ runs, onBatchRefused: onBatchRefused('admissions') }));
  const transitions = lifecycle.add('status changes', new TransitionBatcher({ runs, onBatchRefused: onBatchRefused('status changes') }));
  const { slots, llm } = createLimiters(config, sizing);
  const listeners = new Followers(config.sse.maxListenersPerAccount);
  const lingering = new LingeringAgents();
  const build = await readBuildInfo(logger);
  const metrics = createMetrics({ build, slots, db, store: streams.store, eventLog, archiver, listeners, llm, lingering });
  const gateway = createGateway(config.llm, llm, metrics);
  const builtIn = builtInAgents(gateway);
  const own = [
    ...(config.agents.dir === undefined
      ? []
      : await loadAgentsDir(
          config.agents.dir,
          builtIn.map((a) => a.name),
        )),
    ...deps.agents,
  ];
  const agents = new AgentRegistry([...builtIn, ...own]);
  if (own.length > 0) logger.info('agents loaded', { agents: own.map((a) => a.name), dir: config.agents.dir ?? null });
  const offload = lifecycle.add(
    'offload pool',
    new OffloadPool({
      threads: sizing.offloadThreads.value,
      queueMax: sizing.offloadQueueMax.value,
      baseDir: config.agents.dir,
      onError: (error) => logger.error('an offload thread failed', { error }),
    }),
  );
  const manager = new RunManager({
    runs,
    admissions,
    transitions,
    slots,
    agents,
    eventLog,
    cancelBus: streams.cancelBus,
    instances,
    ends,
    logger,
    observer: metrics.runs,
    lingering,
    services: agentServices(gateway, offload),
    options: {
      instanceId: config.instanceId,
      ...config.runs,
      webhooks: { enabled: config.webhooks.secret !== undefined, allowPrivate: config.webhooks.allowPrivate },
    },
  });
  manager.start();
  const heartbeat = new InstanceHeartbeat({
    instanceId: config.instanceId,
    intervalMs: config.server.heartbeatMs,
    instances,
    runs: manager,
    ends,
    observer: metrics.heartbeat,
    logger,
  });
  await heartbeat.start();
  lifecycle.add('heartbeat', heartbeat);
  await startWebhooks(config, db, lifecycle, logger, metrics.webhooks);
  lifecycle.add('retention', new Retention(new RetentionRepository(db), config.db.retentionDays, logger)).start();
  const app = httpApp(config, deps, { runs, instances, eventLog, archiver, slots, llm, listeners, lingering, metrics, agents, manager });
  return { manager, app };
}

/**
 * The composition root: sizes the instance, opens the database and the event store, wires
 * the runs and the HTTP app, and listens. Nothing else connects or starts timers. On close,
 * the runs drain first, then everything closes in reverse order of start-up.
 */
export async function startServer(
  config: Config,
  logger: Logger,
  machineOverride?: DetectedMachine,
  agents: readonly Agent[] = [],
): Promise<RunningServer> {
  refuseAgentsDirInSingleExecutable(config.agents.dir);
  const machine = machineOverride ?? (await detectMachine());
  const sizing = sizeInstance(config, machine);
  const lifecycle = new Lifecycle(logger);
  try {
    const { db, pool } = await openDatabase(config.db, {
      instanceId: config.instanceId,
      runSlots: sizing.runSlots.value,
      processes: sizing.processes,
    });
    lifecycle.add('database', db);
    const streams = await openStreamBackend({
      redis: config.redis,
      events: config.events,
      instanceId: config.instanceId,
      instances: config.db.instances,
      processes: sizing.processes,
      runSlots: sizing.runSlots.value,
      logger,
      onError: (error) => logger.error('event stream error', { error }),
    });
    lifecycle.add('event streams', streams).start();
    const limits = limitTable(config, {
      MAX_CONCURRENT_AGENT_RUNS: sizing.runSlots,
      RUN_QUEUE_MAX: sizing.queueMax,
      GLOBAL_MAX_INFLIGHT: sizing.llmInflight,
      OFFLOAD_THREADS: sizing.offloadThreads,
      OFFLOAD_QUEUE_MAX: sizing.offloadQueueMax,
      DB_MAX_CONNECTIONS: pool,
      WORKERS: { value: sizing.processes, source: config.server.workers === 'auto' ? 'auto' : config.sources.WORKERS },
      ...streams.limits,
    });
    const tiers = Object.fromEntries(config.runs.tierLimits);
    logger.info('sizing', sizingSummary(machine, limits, { database: db.kind, eventStore: streams.kind, tiers }));
    await migrate(db);
    const { manager, app } = await assemble(config, { db, streams, sizing, machine, limits, lifecycle, logger, agents });
    const { port, host } = config.server;
    // A cluster worker serves the connections the primary hands it (connection-router.ts).
    const listener = config.worker === null ? await listenOnPort(app, port, host) : serveFromPrimary(app, port, host);
    const http = lifecycle.add('http server', listener);
    // Added last, so closed first: runs drain while the rest still works.
    lifecycle.add('runs', { close: () => manager.shutdown(config.server.shutdownGraceMs) });
    const { url } = http;
    logger.info('listening', { url });
    return {
      url,
      instanceId: config.instanceId,
      limits,
      // The listener keeps serving while the runs drain (new runs get 503 draining, /readyz
      // 503), so a load balancer that has not noticed yet sends nobody into a closed port.
      close: () => {
        if (http.accepting) logger.info('shutting down', { active_runs: manager.activeCount, grace_ms: config.server.shutdownGraceMs });
        return lifecycle.closeAll().then(() => {
          logger.info('stopped');
        });
      },
    };
  } catch (error) {
    await lifecycle.closeAll();
    throw error;
  }
}
