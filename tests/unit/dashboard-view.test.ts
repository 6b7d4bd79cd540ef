import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Script } from 'node:vm';
import type { RunSummary } from '../../src/db/run-repository.js';
import { RUN_STATUSES, type RunStatus } from '../../src/domain/index.js';
import { DASHBOARD_SCRIPT } from '../../src/http/dashboard/assets/script.js';
import { DashboardFeed } from '../../src/http/dashboard/dashboard-feed.js';
import { type CapacityView, capacityShape, dashboardView, SHOWN, whyWaiting } from '../../src/http/dashboard/dashboard-view.js';

const limiter = (limit: number, inUse = 0, queued = 0, waiting: string[] = []) => ({
  limit,
  in_use: inUse,
  queued,
  queue_max: limit,
  holders: [],
  waiting,
});

/** A capacity view as GET /v1/admin/capacity answers it, idle, with `changes` applied. */
function capacity(changes: (c: any) => void = () => {}): Record<string, unknown> {
  const c: any = {
    instance_id: 'i-1',
    detected: { cpus: 2, memory_bytes: 4 * 2 ** 30, host: { cpus: 2, memory_bytes: 4 * 2 ** 30 } },
    limits: { MAX_CONCURRENT_AGENT_RUNS: { value: 2, source: 'env' }, RUN_QUEUE_MAX: { value: 4, source: 'auto' } },
    runs: { capacity: 2, in_use: 0, queued: 0, queue_max: 4, holders: [], waiting: [], lingering_agents: 0 },
    db_pool: { kind: 'postgres', max: 10, in_use: 1, idle: 9, waiting: 0 },
    redis: { connections: 2, in_flight_ops: 0, pending_events: 0 },
    archive: { pending_events: 0, pending_bytes: 0, reads: { in_use: 0, queued: 0 } },
    sse: { listeners: 0, accounts: 0 },
    llm: { global: limiter(8), providers: { openai: limiter(4) } },
    accounts: { active: 0, leases: 0, limits: {} },
    sessions: { active: 0, limits: {} },
    instances: [{ id: 'i-1', alive: true, started_at: null, last_beat_at: null, leases: 0 }],
    leases: { total: 0 },
  };
  changes(c);
  return c;
}
const parsed = (changes?: (c: any) => void): CapacityView => capacityShape.parse(capacity(changes));

function run(id: string, status: RunStatus, instanceId = 'i-1'): RunSummary {
  return {
    id,
    accountId: 'a-1',
    accountName: 'acme',
    agent: 'simulate',
    status,
    sessionId: null,
    instanceId,
    createdAt: new Date(0),
    startedAt: null,
    finishedAt: null,
    errorCode: null,
  };
}
const noCounts = Object.fromEntries(RUN_STATUSES.map((s) => [s, 0])) as Record<RunStatus, number>;

describe('whyWaiting', () => {
  it('is empty when nothing waits', () => {
    assert.deepEqual(whyWaiting(parsed()), []);
  });

  it('names full run slots, with the queue and whether new runs are refused', () => {
    const reasons = whyWaiting(parsed((c) => Object.assign(c.runs, { in_use: 2, queued: 4, waiting: ['r1', 'r2', 'r3', 'r4'] })));
    assert.deepEqual(
      reasons.map((r) => r.kind),
      ['slots'],
    );
    assert.match(reasons[0]!.text, /Run slots full: 2 of 2 in use, 4 runs queued/);
    assert.match(reasons[0]!.text, /503 capacity_exhausted/);
  });

  it('names accounts at their tier limit (429) but not those below it, and saturated LLM limiters', () => {
    const reasons = whyWaiting(
      parsed((c) => {
        c.accounts.limits = {
          a1: { name: 'freebie', tier: 'free', limit: 1, in_use: 1, queued: 0, holders: ['x'] },
          a2: { name: 'bigco', tier: 'pro', limit: 5, in_use: 4, queued: 0, holders: [] },
        };
        c.llm.providers.openai = limiter(4, 4, 3);
      }),
    );
    assert.deepEqual(
      reasons.map((r) => r.kind),
      ['account', 'llm'],
    );
    assert.match(reasons[0]!.text, /freebie \(free\) is at its tier limit: 1 of 1 runs; its new runs get 429/);
    assert.match(reasons[1]!.text, /LLM openai saturated: 4 of 4 requests in flight, 3 waiting/);
  });
});

describe('dashboardView', () => {
  it('says what each listed run waits for: a slot here or elsewhere, or an LLM provider', () => {
    const view = dashboardView(
      parsed((c) => {
        Object.assign(c.runs, { in_use: 2, queued: 1, waiting: ['q1'] });
        c.llm.providers.openai = limiter(1, 1, 1, ['r2']);
      }),
      {
        newest: [run('q1', 'queued'), run('q2', 'queued', 'i-2'), run('r1', 'running'), run('r2', 'running')],
        byStatus: noCounts,
        finishedWithinS: 300,
      },
      new Date(0),
    );
    assert.deepEqual(
      view.newest_runs.map((r) => r.waiting_for),
      ['a run slot (all 2 in use)', 'a run slot on i-2', null, 'LLM openai'],
    );
  });

  it('stays bounded: holder lists dropped, the queue, accounts and runs cut to a few', () => {
    const ids = Array.from({ length: 2_000 }, (_, i) => `run-${i}`);
    const view = dashboardView(
      parsed((c) => {
        Object.assign(c.runs, { capacity: 2_000, in_use: 2_000, queued: 2_000, holders: ids, waiting: ids });
        for (let i = 0; i < 100; i++)
          c.accounts.limits[`a${i}`] = { name: `n${i}`, tier: 'pro', limit: 25, in_use: i % 26, queued: 0, holders: ids };
      }),
      { newest: ids.slice(0, 500).map((id) => run(id, 'running')), byStatus: noCounts, finishedWithinS: 300 },
      new Date(0),
    );
    assert.equal(view.slots.waiting.length, SHOWN.waiting);
    assert.equal(view.accounts.listed.length, SHOWN.accounts);
    assert.equal(view.accounts.listed[0]?.state, 'at_limit', 'fullest first');
    assert.equal(view.newest_runs.length, SHOWN.runs);
    assert.ok(JSON.stringify(view).length < 50_000, `${JSON.stringify(view).length} bytes`);
  });
});

describe('DashboardFeed', () => {
  function feed(options: { failFirst?: boolean } = {}) {
    let nowMs = 0;
    let snapshots = 0;
    const source = new DashboardFeed({
      capacity: {
        snapshot: async () => {
          snapshots += 1;
          if (options.failFirst === true && snapshots === 1) throw new Error('database down');
          return capacity();
        },
      },
      runs: { newest: async () => [], countByStatus: async () => noCounts },
      ttlMs: 1_000,
      now: () => nowMs,
    });
    return { source, tick: (ms: number) => (nowMs += ms) };
  }

  it('computes one snapshot for any number of viewers within its TTL, then a new one', async () => {
    const { source, tick } = feed();
    const bodies = await Promise.all(Array.from({ length: 100 }, () => source.body()));
    assert.equal(source.computations, 1);
    assert.equal(new Set(bodies).size, 1);
    tick(999);
    await source.body();
    assert.equal(source.computations, 1);
    tick(1);
    const next = await source.body();
    assert.equal(source.computations, 2);
    assert.equal(JSON.parse(next).generated_at, new Date(1_000).toISOString());
  });

  it('keeps no failed snapshot: the next viewer retries', async () => {
    const { source } = feed({ failFirst: true });
    await assert.rejects(source.body(), /database down/);
    assert.equal(JSON.parse(await source.body()).instance_id, 'i-1');
    assert.equal(source.computations, 2);
  });
});

describe('dashboard script', () => {
  it('is valid JavaScript as served (no build step checks it)', () => {
    assert.doesNotThrow(() => new Script(DASHBOARD_SCRIPT, { filename: 'app.js' }));
  });
});
