import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { FairSemaphore } from '../concurrency/fair-semaphore.js';
import type { Database } from '../db/database.js';
import type { LlmObserver } from '../llm/llm-gateway.js';
import type { LlmLimiters } from '../llm/llm-limiters.js';
import type { RoutingObserver } from '../llm/model-router.js';
import type { HeartbeatObserver } from '../runtime/instance-heartbeat.js';
import type { LingeringAgents } from '../runtime/lingering-agents.js';
import type { RunObserver } from '../runtime/run-execution.js';
import type { WebhookObserver } from '../runtime/webhook-dispatcher.js';
import type { EventArchiver } from '../streaming/event-archiver.js';
import type { EventLog } from '../streaming/event-log.js';
import type { EventStore } from '../streaming/event-store.js';
import type { Followers } from '../streaming/followers.js';
import { collectedCounter, collectedGauge } from './collected-metrics.js';
import { type HttpMetrics, httpMetrics } from './http-metrics.js';
import { llmMetrics } from './llm-metrics.js';
import { runMetrics } from './run-metrics.js';

/** What this build is, for `agentd_build_info`. */
export interface BuildInfo {
  /** package.json's version. */
  readonly version: string;
}

/** The parts whose figures the metrics read (getters, read at each scrape). */
export interface MetricsDeps {
  readonly build: BuildInfo;
  readonly slots: FairSemaphore;
  readonly db: Database;
  readonly store: EventStore;
  readonly eventLog: Pick<EventLog, 'appendedCount' | 'archiveReadStats'>;
  readonly archiver: Pick<EventArchiver, 'pendingCount' | 'pendingBytes' | 'insertedCount'>;
  readonly listeners: Followers;
  readonly llm: LlmLimiters;
  readonly lingering: LingeringAgents;
}

/** The registry and the observers the parts report to. */
export interface Metrics {
  readonly registry: Registry;
  readonly runs: RunObserver;
  readonly llm: LlmObserver;
  readonly routing: RoutingObserver;
  readonly heartbeat: HeartbeatObserver;
  readonly webhooks: WebhookObserver;
  readonly http: HttpMetrics;
}

/**
 * The Prometheus registry of one instance: the standard process and Node.js metrics (no
 * prefix, so stock dashboards work) and agentd's own `agentd_*` series, labelled only by
 * bounded values (agent, status, error code, provider, route pattern, method, status class),
 * never by account, run or session.
 */
export function createMetrics(deps: MetricsDeps): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  buildInfo(registry, deps.build);
  limiterGauges(registry, deps);
  eventMetrics(registry, deps);
  const llm = llmMetrics(registry, deps.llm);
  return {
    registry,
    runs: runMetrics(registry),
    llm: llm.observer,
    routing: llm.routing,
    heartbeat: heartbeatMetrics(registry),
    webhooks: webhookMetrics(registry),
    http: httpMetrics(registry),
  };
}

/** `agentd_build_info{version, node} 1`; a cluster scrape shows it once (every worker runs the same build). */
function buildInfo(registry: Registry, build: BuildInfo): void {
  new Gauge({
    name: 'agentd_build_info',
    help: 'The running build: agentd version and Node.js version; always 1.',
    labelNames: ['version', 'node'],
    aggregator: 'first',
    registers: [registry],
  }).set({ version: build.version, node: process.version }, 1);
}

/** Limit, use and wait of the run slots, the database pool, the Redis connections and the archive reads. */
function limiterGauges(registry: Registry, deps: MetricsDeps): void {
  const gauge = (name: string, help: string, read: () => number) => collectedGauge(registry, name, help, read);
  const { slots, db, store, eventLog } = deps;
  gauge('agentd_run_slots', 'Run slots (MAX_CONCURRENT_AGENT_RUNS).', () => slots.capacity);
  gauge('agentd_run_slots_in_use', 'Run slots held by running runs.', () => slots.inUse);
  gauge('agentd_run_queue_length', 'Runs waiting for a slot.', () => slots.queued);
  gauge('agentd_run_queue_max', 'Runs allowed to wait for a slot (RUN_QUEUE_MAX).', () => slots.queueMax);
  gauge(
    'agentd_lingering_agents',
    'Agents still running after their run ended (they ignored its AbortSignal).',
    () => deps.lingering.count,
  );
  gauge('agentd_db_pool_max', 'Database statements allowed in flight.', () => db.stats().max);
  gauge('agentd_db_pool_in_use', 'Database statements in flight.', () => db.stats().inUse);
  gauge('agentd_db_pool_waiting', 'Database statements waiting for a connection.', () => db.stats().waiting);
  gauge('agentd_event_store_connections', 'Ready connections to the event store (Redis; 0 in-process).', () => store.stats().connections);
  gauge('agentd_event_store_in_flight_commands', 'Redis commands sent and not answered yet.', () => store.stats().inFlightOps);
  collectedCounter(
    registry,
    'agentd_event_store_reconnects_total',
    'Redis connections made ready again after a loss.',
    () => store.stats().reconnects,
  );
  collectedCounter(
    registry,
    'agentd_event_store_reconnect_attempts_total',
    "node-redis' reconnect attempts (each failed attempt counts).",
    () => store.stats().reconnectAttempts,
  );
  gauge(
    'agentd_archive_reads_limit',
    'Catch-up page reads from the Postgres archive allowed at once.',
    () => eventLog.archiveReadStats.limit,
  );
  gauge(
    'agentd_archive_reads_in_flight',
    'Catch-up page reads from the Postgres archive in flight.',
    () => eventLog.archiveReadStats.active,
  );
  gauge(
    'agentd_archive_reads_queued',
    'Catch-up page reads from the Postgres archive waiting for their turn.',
    () => eventLog.archiveReadStats.queued,
  );
}

/** Events written by runs, archived and delivered, what waits to be written, and the SSE listeners. */
function eventMetrics(registry: Registry, deps: MetricsDeps): void {
  const { store, eventLog, archiver, listeners } = deps;
  const counter = (name: string, help: string, read: () => number) => collectedCounter(registry, name, help, read);
  counter('agentd_events_written_total', "Events appended by this instance's runs.", () => eventLog.appendedCount);
  counter('agentd_events_archived_total', 'Events written to the Postgres archive.', () => archiver.insertedCount);
  counter('agentd_events_delivered_total', 'Events sent to SSE listeners (one per listener).', () => listeners.sent.events);
  counter('agentd_sse_sent_bytes_total', 'Bytes of events and heartbeats sent to SSE listeners.', () => listeners.sent.bytes);
  collectedGauge(registry, 'agentd_sse_listeners', 'SSE listeners served by this instance.', () => listeners.count);
  collectedGauge(
    registry,
    'agentd_event_store_pending_events',
    'Events accepted and not yet written to the event store (Redis).',
    () => store.stats().pendingEvents,
  );
  collectedGauge(
    registry,
    'agentd_archive_pending_events',
    'Events accepted and not yet written to the Postgres archive.',
    () => archiver.pendingCount,
  );
  collectedGauge(
    registry,
    'agentd_archive_pending_bytes',
    'Bytes of the events not yet written to the Postgres archive.',
    () => archiver.pendingBytes,
  );
}

/**
 * The fleet as this instance's last beat saw it, and the runs it swept. Every worker of a
 * cluster sees the same fleet, so a cluster scrape takes the largest value, not the sum.
 */
function heartbeatMetrics(registry: Registry): HeartbeatObserver {
  const instances = new Gauge({
    name: 'agentd_instances',
    help: 'Instances by state at the last beat: alive, or dead (silent for 3 beats) with leases still held.',
    labelNames: ['state'],
    aggregator: 'max',
    registers: [registry],
  });
  const leases = new Gauge({
    name: 'agentd_leases',
    help: 'Leases (queued and running runs) held across every instance.',
    aggregator: 'max',
    registers: [registry],
  });
  const swept = new Counter({
    name: 'agentd_runs_swept_total',
    help: 'Runs of dead instances this instance ended as interrupted (instance_lost).',
    registers: [registry],
  });
  return {
    beat: (beat) => {
      instances.set({ state: 'alive' }, beat.alive);
      instances.set({ state: 'dead' }, beat.dead);
      leases.set(beat.leases);
    },
    swept: (runs) => swept.inc(runs),
  };
}

/** Webhook attempts this instance made, by what they came to. */
function webhookMetrics(registry: Registry): WebhookObserver {
  const attempts = new Counter({
    name: 'agentd_webhook_attempts_total',
    help: 'Webhook delivery attempts by outcome: delivered (2xx), retry (due again later) or failed (given up).',
    labelNames: ['outcome'],
    registers: [registry],
  });
  for (const outcome of ['delivered', 'retry', 'failed']) attempts.inc({ outcome }, 0);
  return { attempted: (state) => attempts.inc({ outcome: state === 'pending' ? 'retry' : state }) };
}
