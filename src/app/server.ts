import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createChatAgent } from '../agents/chat.js';
import { AgentRegistry } from '../runtime/agent-registry.js';
import { echoAgent } from '../agents/echo.js';
import { simulateAgent } from '../agents/simulate.js';
import { type DetectedMachine, detectMachine } from '../concurrency/detect.js';
import { FairSemaphore } from '../concurrency/fair-semaphore.js';
import { type Limit, sizeDbPool, sizeRunSlots } from '../concurrency/sizing.js';
import type { Config } from '../config/config.js';
import { AccountRepository } from '../db/account-repository.js';
import { AdmissionBatcher } from '../db/admission-batcher.js';
import type { Database } from '../db/database.js';
import { migrate } from '../db/migrations.js';
import { createPgliteDatabase } from '../db/pglite-database.js';
import { createPostgresDatabase, probeServerLimits } from '../db/postgres-database.js';
import { RunRepository } from '../db/run-repository.js';
import { TransitionBatcher } from '../db/transition-batcher.js';
import { createApp } from '../http/app.js';
import { LlmGateway } from '../llm/llm-gateway.js';
import { LlmLimiters } from '../llm/llm-limiters.js';
import { modelPatternMatcher } from '../llm/model-patterns.js';
import { ModelRouter, type RoutingObserver } from '../llm/model-router.js';
import type { Agent, Logger } from '../domain/index.js';
import { createMetrics } from '../observability/metrics.js';
import { CapacityReport, type LimitTable } from '../observability/capacity-report.js';
import { LingeringAgents } from '../runtime/lingering-agents.js';
import { RunEndRecovery } from '../runtime/run-end-recovery.js';
import { RunManager } from '../runtime/run-manager.js';
import { EventArchiveRepository } from '../db/event-archive-repository.js';
import { EventArchiver } from '../streaming/event-archiver.js';
import { EventLog } from '../streaming/event-log.js';
import { Followers } from '../streaming/followers.js';
import { openStreamBackend, type StreamBackend } from '../streaming/stream-backend.js';

export interface RunningServer {
  readonly url: string;
  readonly instanceId: string;
  readonly limits: LimitTable;
  /** Graceful shutdown in reverse order of start-up; idempotent. */
  close(): Promise<void>;
}

/** Ends a restarted instance's leftover runs `interrupted`, each with its `end` event. */
async function interruptLeftovers(instanceId: string, runs: RunRepository, events: EventLog, logger: Logger): Promise<void> {
  const count = await new RunEndRecovery({ runs, log: events, logger }).interruptInstance(instanceId);
  if (count > 0) logger.warn('ended leftover runs of this instance as interrupted', { count });
}

const configured = (value: number | null, auto: () => Limit): Limit =>
  value === null ? auto() : { value, source: 'env' };

/** The embedded PGlite database, or real Postgres with a pool budgeted against the server. */
async function openDatabase(config: Config, runSlots: number, processes: number): Promise<{ db: Database; pool: Limit }> {
  if (config.databaseUrl === null) {
    const db = await createPgliteDatabase({ dataDir: join(config.dataDir, 'pglite') });
    return { db, pool: { value: 1, source: 'auto' } };
  }
  const url = config.databaseUrl;
  let pool: Limit;
  if (config.dbMaxConnections === null) {
    const server = await probeServerLimits(url);
    pool = sizeDbPool({
      runSlots,
      serverMaxConnections: server.maxConnections,
      reservedConnections: server.reservedConnections,
      instances: config.dbInstances,
      processes,
    });
  } else {
    pool = { value: config.dbMaxConnections, source: 'env' };
  }
  const db = createPostgresDatabase({
    url,
    max: pool.value,
    acquireTimeoutMs: config.dbAcquireTimeoutMs,
    applicationName: `agentd:${config.instanceId}`,
    preparedStatements: config.dbPreparedStatements,
  });
  return { db, pool };
}

/** The `chat` agent over the configured providers; none when LLM_PROVIDERS is unset. */
function llmAgents(config: Config, limiters: LlmLimiters, routing: RoutingObserver): Agent[] {
  if (config.llmProviders.length === 0) return [];
  const gateway = new LlmGateway({
    providers: config.llmProviders,
    limiters,
    router: new ModelRouter({ providers: config.llmProviders, rules: config.llmRoutingRules, cacheTtlMs: config.routingCacheTtlMs, observer: routing }),
    timeouts: {
      baseMs: config.llmTimeoutMs,
      webSearchMs: config.llmWebSearchTimeoutMs,
      thinkingMs: config.llmThinkingTimeoutMs,
      webThinkingMs: config.llmWebThinkingTimeoutMs,
    },
    idleTimeoutMs: config.llmIdleTimeoutMs,
    maxRetries: config.llmMaxRetries,
    isThinkingModel: modelPatternMatcher(config.llmThinkingModels),
  });
  return [createChatAgent(gateway)];
}

/**
 * The composition root: sizes the instance, opens the database and the event store, wires
 * the run manager and the HTTP app, and listens. Nothing else connects or starts timers.
 */
export async function startServer(config: Config, logger: Logger, machineOverride?: DetectedMachine): Promise<RunningServer> {
  const machine = machineOverride ?? (await detectMachine());
  // A cluster worker sizes its share of the machine; explicit limits are per process.
  const processes = config.worker?.count ?? 1;
  const runSlots = sizeRunSlots(machine.effective, config.memoryPerRunMb, config.maxConcurrentAgentRuns ?? undefined, processes);
  const queueMax = configured(config.runQueueMax, () => ({ value: runSlots.value, source: 'auto' }));
  const llmInflight = configured(config.globalMaxInflight, () => ({ value: runSlots.value, source: 'auto' }));

  const { db, pool: dbPool } = await openDatabase(config, runSlots.value, processes);
  // Filled in as each part is sized (the stream backend adds its own), then frozen in the capacity view.
  const limits: Record<string, Limit> = {
    MAX_CONCURRENT_AGENT_RUNS: runSlots,
    RUN_QUEUE_MAX: queueMax,
    RUN_QUEUE_TIMEOUT_MS: { value: config.runQueueTimeoutMs, source: config.sources.RUN_QUEUE_TIMEOUT_MS },
    MEMORY_PER_RUN_MB: { value: config.memoryPerRunMb, source: config.sources.MEMORY_PER_RUN_MB },
    DB_MAX_CONNECTIONS: dbPool,
    DB_INSTANCES: { value: config.dbInstances, source: config.sources.DB_INSTANCES },
    WORKERS: { value: processes, source: config.workers === 'auto' ? 'auto' : config.sources.WORKERS },
    SESSION_MAX_INFLIGHT: { value: config.sessionMaxInflight, source: config.sources.SESSION_MAX_INFLIGHT },
    RUN_TIMEOUT_MS: { value: config.runTimeoutMs, source: config.sources.RUN_TIMEOUT_MS },
    MAX_EVENTS_PER_RUN: { value: config.maxEventsPerRun, source: config.sources.MAX_EVENTS_PER_RUN },
    MAX_EVENT_BYTES: { value: config.maxEventBytes, source: config.sources.MAX_EVENT_BYTES },
    GLOBAL_MAX_INFLIGHT: llmInflight,
    LLM_TIMEOUT_MS: { value: config.llmTimeoutMs, source: config.sources.LLM_TIMEOUT_MS },
    LLM_IDLE_TIMEOUT_MS: { value: config.llmIdleTimeoutMs, source: config.sources.LLM_IDLE_TIMEOUT_MS },
    LLM_MAX_RETRIES: { value: config.llmMaxRetries, source: config.sources.LLM_MAX_RETRIES },
  };

  let streams: StreamBackend | undefined;
  let archiver: EventArchiver | undefined;
  let admissions: AdmissionBatcher | undefined;
  let transitions: TransitionBatcher | undefined;
  let server: Server | undefined;
  let manager: RunManager | undefined;
  let events: EventLog;
  try {
    streams = await openStreamBackend(config, runSlots.value, (error) => logger.error('event stream error', { error }));
    Object.assign(limits, streams.limits);
    logger.info('sizing', {
      detected: machine,
      limits,
      database: db.kind,
      eventStore: streams.kind,
      tiers: Object.fromEntries(config.tierLimits),
    });
    await migrate(db);
    const runs = new RunRepository(db);
    const accounts = new AccountRepository(db);
    const archive = new EventArchiveRepository(db);
    archiver = new EventArchiver({
      repository: archive,
      intervalMs: config.archiveFlushMs,
      onError: (error) => logger.error('archiving events failed; will retry', { error }),
      onRejected: (runId, error) => logger.error('the archive refused an event; it was skipped', { runId, error }),
    });
    events = new EventLog({ store: streams.store, archiver, archive, onError: (error) => logger.warn('event read failed', { error }) });
    await interruptLeftovers(config.instanceId, runs, events, logger);

    const onBatchRefused = (what: string) => (error: unknown, batchSize: number) =>
      logger.warn(`the database refused a batch of ${what}; retrying them one at a time`, { error, batchSize });
    admissions = new AdmissionBatcher({ runs, onBatchRefused: onBatchRefused('admissions') });
    transitions = new TransitionBatcher({ runs, onBatchRefused: onBatchRefused('status changes') });
    const slots = new FairSemaphore({ capacity: runSlots.value, queueMax: queueMax.value, queueTimeoutMs: config.runQueueTimeoutMs });
    // An LLM request waits for its permits at most as long as a request may take (LLM_TIMEOUT_MS).
    const llm = new LlmLimiters({
      globalLimit: llmInflight.value,
      providers: new Map(config.llmProviders.map((p) => [p.name, p.maxInFlight])),
      queueMax: runSlots.value,
      queueTimeoutMs: config.llmTimeoutMs,
    });
    const listeners = new Followers();
    const lingering = new LingeringAgents();
    const metrics = createMetrics({ slots, db, events: streams.store, archiver, listeners, llm, lingering });
    const agents = new AgentRegistry([echoAgent, simulateAgent, ...llmAgents(config, llm, metrics.routing)]);
    const runManager = new RunManager({
      runs,
      admissions,
      transitions,
      slots,
      agents,
      events,
      cancelBus: streams.cancelBus,
      logger,
      observer: metrics.observer,
      lingering,
      options: {
        instanceId: config.instanceId,
        tierLimits: config.tierLimits,
        sessionMaxInflight: config.sessionMaxInflight,
        runTimeoutMs: config.runTimeoutMs,
        maxEventsPerRun: config.maxEventsPerRun,
        maxEventBytes: config.maxEventBytes,
      },
    });
    manager = runManager;
    const app = createApp({
      logger,
      db,
      events: streams.store,
      log: events,
      listeners,
      accounts,
      runs,
      manager: runManager,
      agents,
      capacity: new CapacityReport({
        instanceId: config.instanceId,
        machine,
        limits,
        slots,
        db,
        runs,
        events: streams.store,
        archiver,
        listeners,
        lingering,
        llm,
        tierLimits: config.tierLimits,
        sessionMaxInflight: config.sessionMaxInflight,
      }),
      registry: metrics.registry,
      settings: {
        adminToken: config.adminToken,
        metricsToken: config.metricsToken,
        maxBodyBytes: config.maxBodyBytes,
        maxRunTimeoutMs: config.maxRunTimeoutMs,
        tierLimits: config.tierLimits,
        sseHeartbeatMs: config.sseHeartbeatMs,
        sseMaxBufferBytes: config.sseMaxBufferBytes,
      },
    });
    server = await new Promise<Server>((resolve, reject) => {
      const s = app.listen(config.port, config.host, (error?: Error) => (error ? reject(error) : resolve(s)));
    });
  } catch (error) {
    await transitions?.close();
    await admissions?.close();
    await archiver?.close();
    await streams?.close();
    await db.close();
    throw error;
  }

  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${address.port}`;
  logger.info('listening', { url, instanceId: config.instanceId });

  const listening = server;
  const runManager = manager;
  const streamBackend = streams;
  const eventArchiver = archiver;
  const transitionBatcher = transitions;
  const admissionBatcher = admissions;
  let closing: Promise<void> | undefined;
  return {
    url,
    instanceId: config.instanceId,
    limits,
    close() {
      closing ??= (async () => {
        logger.info('shutting down', { activeRuns: runManager.activeCount, graceMs: config.shutdownGraceMs });
        const stopped = new Promise<void>((resolve) => listening.close(() => resolve()));
        listening.closeIdleConnections();
        await runManager.shutdown(config.shutdownGraceMs);
        listening.closeAllConnections();
        await stopped;
        await transitionBatcher.close();
        await admissionBatcher.close();
        await eventArchiver.close();
        await streamBackend.close();
        await db.close();
        logger.info('stopped');
      })();
      return closing;
    },
  };
}
