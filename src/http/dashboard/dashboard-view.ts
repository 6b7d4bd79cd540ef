import { z } from 'zod';
import type { RunSummary } from '../../db/run-repository.js';
import type { RunStatus } from '../../domain/index.js';

/** Most runs, accounts, queued run ids and instances one snapshot lists: its size stays bounded. */
export const SHOWN = { runs: 50, accounts: 20, waiting: 50, instances: 50 } as const;
/** An account holding this share of its tier limit is near it. */
const NEAR_LIMIT = 0.8;

const count = z.number().int().nonnegative();
const limiter = z.object({ limit: count, in_use: count, queued: count, queue_max: count, waiting: z.array(z.string()) });
const tenancy = z.object({ limit: count, in_use: count, queued: count });

/**
 * The parts of `GET /v1/admin/capacity` the dashboard reads; zod drops the rest (the holder
 * lists, as long as the run slots at 2,000 runs), so what the page gets stays small.
 */
export const capacityShape = z.object({
  instance_id: z.string(),
  detected: z.object({ cpus: z.number(), memory_bytes: z.number() }),
  limits: z.record(z.string(), z.object({ value: z.number(), source: z.string() })),
  runs: z.object({
    capacity: count,
    in_use: count,
    queued: count,
    queue_max: count,
    waiting: z.array(z.string()),
    lingering_agents: count,
  }),
  db_pool: z.object({ kind: z.string(), max: count, in_use: count, idle: count, waiting: count }),
  redis: z.object({ connections: count, in_flight_ops: count, pending_events: count }),
  archive: z.object({ pending_events: count, pending_bytes: count }),
  sse: z.object({ listeners: count, accounts: count }),
  llm: z.object({ global: limiter, providers: z.record(z.string(), limiter) }),
  accounts: z.object({
    active: count,
    leases: count,
    limits: z.record(z.string(), tenancy.extend({ name: z.string(), tier: z.string() })),
  }),
  sessions: z.object({ active: count, limits: z.record(z.string(), tenancy) }),
  instances: z.array(
    z.object({ id: z.string(), alive: z.boolean(), started_at: z.string().nullable(), last_beat_at: z.string().nullable(), leases: count }),
  ),
});
export type CapacityView = z.infer<typeof capacityShape>;

/** One reason work waits or is refused now: the answer to "why is my run queued?". */
export interface WaitReason {
  readonly kind: 'slots' | 'account' | 'session' | 'llm';
  readonly text: string;
}

/** An LLM limiter (the global one, or a provider's) with whether it makes requests wait. */
function llmLimiters(capacity: CapacityView) {
  const named = [['global (all providers)', capacity.llm.global] as const, ...Object.entries(capacity.llm.providers)];
  return named.map(([name, l]) => ({
    name,
    limit: l.limit,
    in_use: l.in_use,
    queued: l.queued,
    queue_max: l.queue_max,
    waiting: l.waiting,
  }));
}
const saturated = (l: { limit: number; in_use: number; queued: number }) => l.queued > 0 || l.in_use >= l.limit;

/** The accounts holding leases, fullest first, each marked at or near its tier limit. */
function accountRows(capacity: CapacityView) {
  const rows = Object.entries(capacity.accounts.limits).map(([id, a]) => ({
    id,
    name: a.name,
    tier: a.tier,
    limit: a.limit,
    in_use: a.in_use,
    queued: a.queued,
    state: a.in_use >= a.limit ? 'at_limit' : a.in_use >= NEAR_LIMIT * a.limit ? 'near_limit' : 'ok',
  }));
  const fill = (r: { limit: number; in_use: number }) => (r.limit === 0 ? Number.POSITIVE_INFINITY : r.in_use / r.limit);
  return rows.sort((a, b) => fill(b) - fill(a) || b.in_use - a.in_use || a.id.localeCompare(b.id));
}

/**
 * Why work waits or is refused now, most basic first: the run slots are full (runs queue),
 * accounts or sessions are at their limit (their new runs get 429), or an LLM limiter is
 * saturated (requests of running runs queue). Empty when nothing waits.
 */
export function whyWaiting(capacity: CapacityView): WaitReason[] {
  const reasons: WaitReason[] = [];
  const { runs } = capacity;
  if (runs.in_use >= runs.capacity) {
    const queueFull = runs.queued >= runs.queue_max ? '; the queue is full, so new runs get 503 capacity_exhausted' : '';
    reasons.push({
      kind: 'slots',
      text: `Run slots full: ${runs.in_use} of ${runs.capacity} in use, ${runs.queued} runs queued for a slot (queue ${runs.queued} of ${runs.queue_max}${queueFull}).`,
    });
  }
  const atLimit = accountRows(capacity).filter((a) => a.state === 'at_limit');
  for (const a of atLimit.slice(0, SHOWN.accounts)) {
    reasons.push({
      kind: 'account',
      text: `Account ${a.name} (${a.tier}) is at its tier limit: ${a.in_use} of ${a.limit} runs; its new runs get 429 account_concurrency_limit.`,
    });
  }
  if (atLimit.length > SHOWN.accounts) {
    reasons.push({ kind: 'account', text: `${atLimit.length - SHOWN.accounts} more accounts are at their tier limit.` });
  }
  const sessions = Object.values(capacity.sessions.limits).filter((s) => s.in_use >= s.limit).length;
  if (sessions > 0) {
    reasons.push({
      kind: 'session',
      text: `${sessions} sessions are at SESSION_MAX_INFLIGHT; their new runs get 429 session_concurrency_limit.`,
    });
  }
  for (const l of llmLimiters(capacity).filter(saturated)) {
    reasons.push({ kind: 'llm', text: `LLM ${l.name} saturated: ${l.in_use} of ${l.limit} requests in flight, ${l.queued} waiting.` });
  }
  return reasons;
}

/** What a listed run waits for now, if anything. */
function waitingFor(run: RunSummary, capacity: CapacityView, llmWaits: ReadonlyMap<string, string>): string | null {
  if (run.status === 'queued') {
    const { in_use, capacity: slots } = capacity.runs;
    if (run.instanceId !== capacity.instance_id) return `a run slot on ${run.instanceId}`;
    return in_use >= slots ? `a run slot (all ${slots} in use)` : 'a run slot';
  }
  if (run.status !== 'running') return null;
  const llm = llmWaits.get(run.id);
  return llm === undefined ? null : `LLM ${llm}`;
}

function runRow(run: RunSummary, capacity: CapacityView, llmWaits: ReadonlyMap<string, string>) {
  return {
    id: run.id,
    account_id: run.accountId,
    account_name: run.accountName,
    agent: run.agent,
    status: run.status,
    session_id: run.sessionId,
    instance_id: run.instanceId,
    created_at: run.createdAt.toISOString(),
    started_at: run.startedAt?.toISOString() ?? null,
    finished_at: run.finishedAt?.toISOString() ?? null,
    error_code: run.errorCode,
    waiting_for: waitingFor(run, capacity, llmWaits),
  };
}

/** What the database says about runs on every instance. */
export interface RunsOverview {
  readonly newest: readonly RunSummary[];
  readonly byStatus: Readonly<Record<RunStatus, number>>;
  /** `byStatus` counts final statuses reached within this many seconds. */
  readonly finishedWithinS: number;
}

/** One dashboard snapshot: the capacity view trimmed to bounded lists, the runs, and why work waits. */
export function dashboardView(capacity: CapacityView, runs: RunsOverview, generatedAt: Date) {
  const llm = llmLimiters(capacity);
  const llmWaits = new Map<string, string>();
  for (const l of llm) for (const runId of l.waiting) if (!llmWaits.has(runId)) llmWaits.set(runId, l.name);
  const accounts = accountRows(capacity);
  const { waiting, ...slots } = capacity.runs;
  return {
    generated_at: generatedAt.toISOString(),
    instance_id: capacity.instance_id,
    detected: capacity.detected,
    why_waiting: whyWaiting(capacity),
    slots: { ...slots, waiting: waiting.slice(0, SHOWN.waiting) },
    accounts: {
      active: capacity.accounts.active,
      leases: capacity.accounts.leases,
      at_limit: accounts.filter((a) => a.state === 'at_limit').length,
      listed: accounts.slice(0, SHOWN.accounts),
    },
    sessions: {
      active: capacity.sessions.active,
      at_limit: Object.values(capacity.sessions.limits).filter((s) => s.in_use >= s.limit).length,
    },
    db_pool: capacity.db_pool,
    redis: capacity.redis,
    archive: capacity.archive,
    sse: capacity.sse,
    llm: llm.map(({ waiting: _, ...l }) => ({ ...l, saturated: saturated(l) })),
    instances: capacity.instances.slice(0, SHOWN.instances),
    runs_by_status: { counts: runs.byStatus, finished_within_s: runs.finishedWithinS },
    newest_runs: runs.newest.slice(0, SHOWN.runs).map((run) => runRow(run, capacity, llmWaits)),
    limits: Object.entries(capacity.limits).map(([name, l]) => ({ name, value: l.value, source: l.source })),
  };
}

export type DashboardView = ReturnType<typeof dashboardView>;
