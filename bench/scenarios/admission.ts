import type http from 'node:http';
import { keepAliveAgent, request, runPool } from '../lib/http.js';
import { type LatencySummary, msSince, round, summarize } from '../lib/stats.js';
import { medianPass, repeat, type Spread, spreadOf } from '../lib/passes.js';
import { cpuMeter, postgresPids } from '../lib/procs.js';
import type { System } from '../lib/systems.js';

export interface AdmissionResult {
  readonly system: string;
  /** runs/s of every pass when the step was repeated (the result is the median pass). */
  readonly passes?: readonly number[];
  /** Every pass in full when the step was repeated, and the spread of its key figures. */
  readonly passResults?: readonly AdmissionResult[];
  readonly spread?: { readonly runsPerSecond: Spread; readonly serverCpuPerRunUs: Spread };
  readonly runs: number;
  readonly clients: number;
  readonly accounts: number;
  readonly accepted: number;
  readonly rejected: Record<string, number>;
  /** 202s per second over the measured phase (a 202 is sent after the run's row is committed). */
  readonly runsPerSecond: number;
  readonly latencyMs: LatencySummary;
  readonly elapsedMs: number;
  /** Cores used during the measured phase by the system's processes, Postgres, and the bench client. */
  readonly cpu: { readonly server: number; readonly postgres: number; readonly client: number };
  /** CPU of the system's servers and Postgres per admitted run (µs), over the measured phase. */
  readonly serverCpuPerRunUs: number;
  /** Final statuses of the accepted runs, once none is queued or running any more. */
  readonly statuses: Record<string, number>;
  readonly allCompleted: boolean;
  readonly settleMs: number;
  /** Largest values `sample` returned during the measured phase (agentd: DB pool in use / waiting, run slots). */
  readonly sampledMax?: Record<string, number>;
}

/** How a scenario checks the final status of runs: by id, in whichever store the system keeps them. */
export type StatusCounter = (runs: ReadonlyArray<{ readonly id: string; readonly token: string }>) => Promise<Record<string, number>>;

const ACTIVE = new Set(['queued', 'running']);

/**
 * `runs` echo runs created by `clients` concurrent clients across `accountCount` accounts
 * (client c uses accounts c, c+clients, ... in turn), after `warmup` runs that do not count.
 */
export async function runAdmission(
  system: System,
  options: {
    runs: number;
    clients: number;
    accounts: number;
    warmup: number;
    tier: string;
    countStatuses: StatusCounter;
    settleTimeoutMs: number;
    /** The Postgres processes whose CPU counts (default: every `postgres` process on the machine). */
    postgresPids?: () => number[];
    /** Polled every 100 ms during the measured phase; the maxima are reported. */
    sample?: () => Promise<Record<string, number>>;
  },
): Promise<AdmissionResult> {
  const agent = keepAliveAgent(options.clients);
  try {
    const tokens: string[] = [];
    await runPool(options.accounts, 16, async (index) => {
      tokens[index] = await system.createAccount(agent, options.tier);
    });
    const post = (token: string, i: number) =>
      request(agent, 'POST', `${system.url}/v1/runs`, { token, body: { agent: 'echo', input: `run ${i}` }, timeoutMs: 60_000 });
    const pick = (worker: number, round: number) => tokens[(worker + round * options.clients) % options.accounts] as string;

    const warmRounds = new Map<number, number>();
    await runPool(options.warmup, options.clients, async (i, worker) => {
      const roundNo = warmRounds.get(worker) ?? 0;
      warmRounds.set(worker, roundNo + 1);
      await post(pick(worker, roundNo), i);
    });

    const latencies: number[] = [];
    const ids: Array<{ id: string; token: string }> = [];
    const rejected: Record<string, number> = {};
    const rounds = new Map<number, number>();
    const sampledMax: Record<string, number> = {};
    let sampling = options.sample !== undefined;
    const sampler = (async () => {
      while (sampling && options.sample !== undefined) {
        try {
          for (const [key, value] of Object.entries(await options.sample())) sampledMax[key] = Math.max(sampledMax[key] ?? 0, value);
        } catch {
          // a missed sample only lowers the maxima
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    // CPU of each party on the shared cores during the measured phase: the system's server
    // processes, Postgres, and this (client) process.
    const serverCpu = cpuMeter(() => system.pids());
    const postgresCpu = cpuMeter(options.postgresPids ?? postgresPids);
    const clientStart = process.cpuUsage();
    const started = process.hrtime.bigint();
    await runPool(options.runs, options.clients, async (i, worker) => {
      const roundNo = rounds.get(worker) ?? 0;
      rounds.set(worker, roundNo + 1);
      const sent = process.hrtime.bigint();
      const token = pick(worker, roundNo);
      let result: Awaited<ReturnType<typeof post>>;
      try {
        result = await post(token, i);
      } catch (error) {
        const code = error instanceof Error ? error.message.slice(0, 60) : 'error';
        rejected[code] = (rejected[code] ?? 0) + 1;
        return;
      }
      latencies.push(msSince(sent));
      if (result.status === 202) {
        ids.push({ id: (JSON.parse(result.body) as { id: string }).id, token });
      } else {
        const code = `${result.status} ${(/"code":"([a-z_]+)"/.exec(result.body) ?? [])[1] ?? ''}`.trim();
        rejected[code] = (rejected[code] ?? 0) + 1;
      }
    });
    const elapsedMs = msSince(started);
    const clientCpu = process.cpuUsage(clientStart);
    const cores = (seconds: number) => round(seconds / (elapsedMs / 1000), 2);
    const serverSeconds = serverCpu();
    const postgresSeconds = postgresCpu();
    const cpu = {
      server: cores(serverSeconds),
      postgres: cores(postgresSeconds),
      client: cores((clientCpu.user + clientCpu.system) / 1e6),
    };
    sampling = false;
    await sampler;

    const settleStart = Date.now();
    let statuses: Record<string, number> = {};
    for (;;) {
      statuses = await options.countStatuses(ids);
      const active = Object.entries(statuses).some(([status, n]) => ACTIVE.has(status) && n > 0);
      if (!active || Date.now() - settleStart > options.settleTimeoutMs) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    return {
      system: system.name,
      runs: options.runs,
      clients: options.clients,
      accounts: options.accounts,
      accepted: ids.length,
      rejected,
      runsPerSecond: round((ids.length * 1000) / elapsedMs, 0),
      latencyMs: summarize(latencies),
      elapsedMs: round(elapsedMs, 0),
      cpu,
      serverCpuPerRunUs: round(((serverSeconds + postgresSeconds) * 1e6) / Math.max(1, ids.length), 0),
      statuses,
      allCompleted: ids.length === options.runs && (statuses.completed ?? 0) === options.runs,
      settleMs: Date.now() - settleStart,
      ...(options.sample === undefined ? {} : { sampledMax }),
    };
  } finally {
    agent.destroy();
  }
}

/** Counts statuses with GET /v1/runs/:id (for the embedded database, which only agentd can open). */
export function statusesOverHttp(agent: http.Agent, url: string): StatusCounter {
  return async (runs) => {
    const counts: Record<string, number> = {};
    await runPool(runs.length, 32, async (i) => {
      const run = runs[i] as { id: string; token: string };
      const result = await request(agent, 'GET', `${url}/v1/runs/${run.id}`, { token: run.token });
      const status = result.status === 200 ? (JSON.parse(result.body) as { status: string }).status : `http_${result.status}`;
      counts[status] = (counts[status] ?? 0) + 1;
    });
    return counts;
  };
}

/**
 * Runs the admission step `passes` times (each after `before`, the pinning step) and returns
 * the median pass by runs/s, with every pass beside it and the spread of runs/s and server CPU
 * per admitted run: one pass of 5,000 runs lasts about 2 s, and on this shared VM single passes
 * of the same build differed by ±25 %. Every pass must also have completed all its runs.
 */
export async function repeatAdmission(
  passes: number,
  pass: () => Promise<AdmissionResult>,
  before?: (index: number) => Promise<void>,
): Promise<AdmissionResult> {
  const results = await repeat(passes, () => pass(), before === undefined ? {} : { before });
  const median = medianPass(results, (r) => r.runsPerSecond);
  return {
    ...median,
    allCompleted: results.every((r) => r.allCompleted),
    passes: results.map((r) => r.runsPerSecond),
    passResults: results,
    spread: {
      runsPerSecond: spreadOf(results.map((r) => r.runsPerSecond)),
      serverCpuPerRunUs: spreadOf(results.map((r) => r.serverCpuPerRunUs)),
    },
  };
}
