import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { LingeringAgents } from '../runtime/lingering-agents.js';
import type { EventArchiver } from '../streaming/event-archiver.js';
import type { FairSemaphore } from '../concurrency/fair-semaphore.js';
import type { Database } from '../db/database.js';
import type { LlmLimiters } from '../llm/llm-limiters.js';
import type { RoutingObserver } from '../llm/model-router.js';
import type { HeartbeatObserver } from '../runtime/instance-heartbeat.js';
import type { RunObserver } from '../runtime/run-execution.js';
import type { EventStore } from '../streaming/event-store.js';
import type { Followers } from '../streaming/followers.js';

/** The Prometheus registry of one instance (no per-account labels), and the run observer feeding it. */
export function createMetrics(deps: {
  slots: FairSemaphore;
  db: Database;
  store: EventStore;
  listeners: Followers;
  llm: LlmLimiters;
  lingering: LingeringAgents;
  archiver: Pick<EventArchiver, 'pendingCount'>;
}): { registry: Registry; observer: RunObserver; routing: RoutingObserver; heartbeat: HeartbeatObserver } {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'agentd_process_' });
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });
  gauge('agentd_run_slots', 'Run slots of this instance.', () => deps.slots.capacity);
  gauge('agentd_run_slots_in_use', 'Run slots held by running runs.', () => deps.slots.inUse);
  gauge('agentd_run_queue_length', 'Runs waiting for a slot.', () => deps.slots.queued);
  gauge('agentd_db_pool_max', 'Database statements allowed in flight.', () => deps.db.stats().max);
  gauge('agentd_db_pool_in_use', 'Database statements in flight.', () => deps.db.stats().inUse);
  gauge('agentd_db_pool_waiting', 'Database statements waiting for a connection.', () => deps.db.stats().waiting);
  gauge('agentd_sse_listeners', 'SSE listeners served by this instance.', () => deps.listeners.count);
  gauge(
    'agentd_lingering_agents',
    'Agents still running after their run ended (they ignored its AbortSignal).',
    () => deps.lingering.count,
  );
  gauge('agentd_event_store_connections', 'Connections of the event store (Redis).', () => deps.store.stats().connections);
  gauge(
    'agentd_event_store_pending_events',
    'Events accepted and not yet written to the event store.',
    () => deps.store.stats().pendingEvents,
  );
  gauge('agentd_archive_pending_events', 'Events accepted and not yet written to the Postgres archive.', () => deps.archiver.pendingCount);
  llmGauges(registry, deps.llm);
  return { registry, observer: runObserver(registry), routing: routingObserver(registry), heartbeat: heartbeatObserver(registry) };
}

/** Counts runs started and finished, and their durations, by agent and status. */
function runObserver(registry: Registry): RunObserver {
  const started = new Counter({
    name: 'agentd_runs_started_total',
    help: 'Runs that started running.',
    labelNames: ['agent'],
    registers: [registry],
  });
  const ended = new Counter({
    name: 'agentd_runs_finished_total',
    help: 'Runs that ended after running, by final status.',
    labelNames: ['agent', 'status'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'agentd_run_duration_seconds',
    help: 'Time from running to the end of a run.',
    labelNames: ['agent', 'status'],
    buckets: [0.005, 0.05, 0.25, 1, 5, 30, 120, 600, 3600],
    registers: [registry],
  });
  return {
    runStarted: (agent) => started.inc({ agent }),
    runEnded: (agent, status, durationMs) => {
      ended.inc({ agent, status });
      duration.observe({ agent, status }, durationMs / 1000);
    },
  };
}

/** The fleet as this instance's last beat saw it, and the runs it swept. */
function heartbeatObserver(registry: Registry): HeartbeatObserver {
  const instances = new Gauge({
    name: 'agentd_instances',
    help: 'Instances by state at the last beat: alive, or dead (silent for 3 beats) with leases still held.',
    labelNames: ['state'],
    registers: [registry],
  });
  const leases = new Gauge({
    name: 'agentd_leases',
    help: 'Leases (queued and running runs) held across every instance.',
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

/** Counts model routing decisions served from the cache and computed. */
function routingObserver(registry: Registry): RoutingObserver {
  const cacheHits = new Counter({
    name: 'agentd_routing_cache_hits_total',
    help: 'Model routing decisions served from the cache.',
    registers: [registry],
  });
  const cacheMisses = new Counter({
    name: 'agentd_routing_cache_misses_total',
    help: 'Model routing decisions computed from LLM_ROUTING_RULES.',
    registers: [registry],
  });
  return { cacheHit: () => cacheHits.inc(), cacheMiss: () => cacheMisses.inc() };
}

/** In-flight, limit and queue of the global and every provider LLM limiter, labelled by scope and provider. */
function llmGauges(registry: Registry, llm: LlmLimiters): void {
  const gauge = (name: string, help: string, read: (semaphore: FairSemaphore) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['scope', 'provider'],
      registers: [registry],
      collect() {
        this.set({ scope: 'global' }, read(llm.global));
        for (const [provider, semaphore] of llm.providers) this.set({ scope: 'provider', provider }, read(semaphore));
      },
    });
  gauge('agentd_llm_in_flight', 'LLM requests holding a permit.', (s) => s.inUse);
  gauge('agentd_llm_limit', 'LLM requests allowed in flight (GLOBAL_MAX_INFLIGHT, max_in_flight).', (s) => s.capacity);
  gauge('agentd_llm_queued', 'LLM requests waiting for a permit.', (s) => s.queued);
}
