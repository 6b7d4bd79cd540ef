import type http from 'node:http';
import { keepAliveAgent, request, requestJson, runPool } from '../lib/http.js';
import { openSse } from '../lib/sse.js';
import { msSince, round } from '../lib/stats.js';
import type { StatusCounter } from './admission.js';

/** The mix: run i ends the way MIX[i % MIX.length] says. */
const MIX = ['echo', 'echo', 'echo', 'echo', 'fail_at', 'timeout', 'cancel', 'ignore_cancel', 'stream', 'stream_disconnect'] as const;
type Ending = (typeof MIX)[number];
const EXPECTED: Record<Ending, string> = {
  echo: 'completed',
  fail_at: 'failed',
  timeout: 'timed_out',
  cancel: 'cancelled',
  ignore_cancel: 'cancelled',
  stream: 'completed',
  stream_disconnect: 'completed',
};

export interface SoakResult {
  readonly runs: number;
  readonly warmup: number;
  readonly clients: number;
  readonly mix: Record<string, number>;
  readonly elapsedMs: number;
  readonly runsPerSecond: number;
  readonly errors: Record<string, number>;
  readonly statuses: Record<string, number>;
  readonly expectedStatuses: Record<string, number>;
  readonly statusesMatch: boolean;
  /** `GET /v1/admin/capacity` once the instance is idle. */
  readonly capacityAfter: Record<string, unknown>;
  readonly limitersAtZero: boolean;
  readonly limitersDetail: Record<string, number>;
  /** agentd's V8 heap and external memory when the RSS figures below were taken. */
  readonly memoryAfterWarmup: Record<string, number>;
  readonly memoryAfter: Record<string, number>;
  /** RSS 2 s after the warm-up / the soak went idle. */
  readonly rssAfterWarmupSoonBytes: number;
  readonly rssAfterSoonBytes: number;
  /** RSS QUIET_MS after the warm-up / the soak went idle (the compared figures). */
  readonly rssAfterWarmupBytes: number;
  readonly rssAfterBytes: number;
  readonly rssPeakBytes: number;
  readonly rssGrowth: number;
}

interface Capacity {
  runs: { in_use: number; queued: number; lingering_agents?: number };
  db_pool: { in_use: number; waiting: number };
  redis: { in_flight_ops: number; pending_events?: number };
  archive?: { pending_events: number };
  sse: { listeners: number };
  accounts: { active: number; leases: number };
  sessions: { active: number };
}

function limiters(c: Capacity): Record<string, number> {
  return {
    'runs.in_use': c.runs.in_use,
    'runs.queued': c.runs.queued,
    // Agents that ignored their cancel run on after their run ended (up to 10 s here): the
    // instance is idle once they have stopped too.
    'runs.lingering_agents': c.runs.lingering_agents ?? 0,
    'db_pool.in_use': c.db_pool.in_use,
    'db_pool.waiting': c.db_pool.waiting,
    'redis.in_flight_ops': c.redis.in_flight_ops,
    'redis.pending_events': c.redis.pending_events ?? 0,
    'archive.pending_events': c.archive?.pending_events ?? 0,
    'sse.listeners': c.sse.listeners,
    'accounts.active': c.accounts.active,
    'accounts.leases': c.accounts.leases,
    'sessions.active': c.sessions.active,
  };
}

async function oneRun(agent: http.Agent, url: string, token: string, ending: Ending, i: number): Promise<string | null> {
  const post = (body: unknown) => request(agent, 'POST', `${url}/v1/runs`, { token, body, timeoutMs: 30_000 });
  const idOf = (result: { status: number; body: string }) => {
    if (result.status !== 202) throw new Error(`${result.status} ${(/"code":"([a-z_]+)"/.exec(result.body) ?? [])[1] ?? ''}`);
    return (JSON.parse(result.body) as { id: string }).id;
  };
  const long = { agent: 'simulate', input: { events: 1000, interval_ms: 10 } };
  switch (ending) {
    case 'echo':
      return idOf(await post({ agent: 'echo', input: `soak ${i}` }));
    case 'fail_at':
      return idOf(await post({ agent: 'simulate', input: { events: 5, interval_ms: 1, fail_at: 2 } }));
    case 'timeout':
      return idOf(await post({ ...long, timeout_ms: 30 }));
    case 'cancel':
    case 'ignore_cancel': {
      const id = idOf(
        await post(ending === 'cancel' ? long : { agent: 'simulate', input: { events: 1000, interval_ms: 10, ignore_cancel: true } }),
      );
      await new Promise((resolve) => setTimeout(resolve, 15));
      const cancelled = await request(agent, 'POST', `${url}/v1/runs/${id}/cancel`, { token, timeoutMs: 30_000 });
      if (cancelled.status !== 202) throw new Error(`cancel ${cancelled.status}`);
      return id;
    }
    case 'stream':
    case 'stream_disconnect':
      return new Promise((resolve, reject) => {
        let id: string | null = null;
        let events = 0;
        const body =
          ending === 'stream' ? { agent: 'echo', input: `soak ${i}` } : { agent: 'simulate', input: { events: 20, interval_ms: 2 } };
        const stop = openSse(
          agent,
          { url: `${url}/v1/runs/stream`, method: 'POST', token, body },
          {
            onOpen(status, headers) {
              if (status !== 200) reject(new Error(`stream ${status}`));
              id = typeof headers['x-run-id'] === 'string' ? headers['x-run-id'] : null;
            },
            onEvent() {
              events += 1;
              // Disconnect after two events: the run goes on (no cancel_on_disconnect) and its listener must go.
              if (ending === 'stream_disconnect' && events === 2) {
                stop();
                resolve(id);
              }
            },
            onClose(error) {
              if (error !== null && !(ending === 'stream_disconnect' && events >= 2)) reject(error);
              else resolve(id);
            },
          },
        );
      });
  }
}

const QUIET_MS = 30_000;

/** 20,000 runs with mixed endings through one instance; then every limiter at 0 and RSS back near its warm level. */
export async function runSoak(options: {
  url: string;
  adminToken: string;
  tokens: readonly string[];
  runs: number;
  warmup: number;
  clients: number;
  rss: () => number;
  countStatuses: StatusCounter;
  /** Called after the warm-up and after the soak, when idle (heap snapshots with --profile). */
  onIdle?: (when: 'after-warmup' | 'after-soak') => Promise<void>;
}): Promise<SoakResult> {
  const agent = keepAliveAgent(options.clients * 2);
  /**
   * RSS 2 s into an idle spell, and after QUIET_MS: V8 gives back heap it grew during a burst
   * only once the allocation rate has stayed low for a while (its memory reducer), so the
   * later figure is the one compared.
   */
  /** V8 heap committed and used, and memory outside it, from agentd's /metrics (prom-client defaults). */
  const memory = async (): Promise<Record<string, number>> => {
    const { body } = await request(agent, 'GET', `${options.url}/metrics`, {});
    const read = (name: string) => Number((new RegExp(`^${name} ([0-9.e+]+)$`, 'm').exec(body) ?? [])[1]);
    return {
      heapTotalBytes: read('nodejs_heap_size_total_bytes'),
      heapUsedBytes: read('nodejs_heap_size_used_bytes'),
      externalBytes: read('nodejs_external_memory_bytes'),
      residentBytes: read('process_resident_memory_bytes'),
    };
  };
  const quietRss = async (): Promise<[number, number]> => {
    const start = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const soon = options.rss();
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, start + QUIET_MS - Date.now())));
    return [soon, options.rss()];
  };
  const errors: Record<string, number> = {};
  const mix: Record<string, number> = {};
  const expectedStatuses: Record<string, number> = {};
  const capacity = () => requestJson<Capacity>(agent, 'GET', `${options.url}/v1/admin/capacity`, 200, { token: options.adminToken });
  const idle = async (timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const c = await capacity();
      if (Object.values(limiters(c)).every((v) => v === 0) || Date.now() > deadline) return c;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  };
  let peak = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peak = Math.max(peak, options.rss());
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  })();
  const phase = async (count: number, offset: number, record: boolean) => {
    const runs: Array<{ id: string; token: string }> = [];
    const rounds = new Map<number, number>();
    await runPool(count, options.clients, async (n, worker) => {
      const i = n + offset;
      const roundNo = rounds.get(worker) ?? 0;
      rounds.set(worker, roundNo + 1);
      const token = options.tokens[(worker + roundNo * options.clients) % options.tokens.length] as string;
      const ending = MIX[i % MIX.length] as Ending;
      try {
        const id = await oneRun(agent, options.url, token, ending, i);
        if (record) {
          mix[ending] = (mix[ending] ?? 0) + 1;
          if (id !== null) {
            runs.push({ id, token });
            expectedStatuses[EXPECTED[ending]] = (expectedStatuses[EXPECTED[ending]] ?? 0) + 1;
          }
        }
      } catch (error) {
        const code = error instanceof Error ? error.message.slice(0, 60) : 'error';
        errors[code] = (errors[code] ?? 0) + 1;
      }
    });
    return runs;
  };
  try {
    await phase(options.warmup, 0, false);
    await idle(60_000);
    const [rssAfterWarmupSoon, rssAfterWarmup] = await quietRss();
    const memoryAfterWarmup = await memory();
    await options.onIdle?.('after-warmup');
    const started = process.hrtime.bigint();
    const runs = await phase(options.runs, options.warmup, true);
    const elapsedMs = msSince(started);
    const after = await idle(60_000);
    const [rssAfterSoon, rssAfter] = await quietRss();
    const memoryAfter = await memory();
    await options.onIdle?.('after-soak');
    const statuses = await options.countStatuses(runs);
    const detail = limiters(after);
    const statusesMatch = Object.keys({ ...statuses, ...expectedStatuses }).every((s) => (statuses[s] ?? 0) === (expectedStatuses[s] ?? 0));
    return {
      runs: options.runs,
      warmup: options.warmup,
      clients: options.clients,
      mix,
      elapsedMs: round(elapsedMs, 0),
      runsPerSecond: round((options.runs * 1000) / elapsedMs, 0),
      errors,
      statuses,
      expectedStatuses,
      statusesMatch,
      capacityAfter: after as unknown as Record<string, unknown>,
      limitersAtZero: Object.values(detail).every((v) => v === 0),
      limitersDetail: detail,
      memoryAfterWarmup,
      memoryAfter,
      rssAfterWarmupSoonBytes: rssAfterWarmupSoon,
      rssAfterSoonBytes: rssAfterSoon,
      rssAfterWarmupBytes: rssAfterWarmup,
      rssAfterBytes: rssAfter,
      rssPeakBytes: peak,
      rssGrowth: round(rssAfter / rssAfterWarmup - 1, 3),
    };
  } finally {
    sampling = false;
    await sampler;
    agent.destroy();
  }
}
