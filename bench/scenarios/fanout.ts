import type http from 'node:http';
import { commandCalls, commandDelta, connectionsNamed, type RedisClient, usedMemory } from '../lib/infra.js';
import { keepAliveAgent, runPool } from '../lib/http.js';
import { ListenerPool } from '../lib/listener-pool.js';
import { cpuMeter, cpuSeconds, postgresPids } from '../lib/procs.js';
import type { SseRequest } from '../lib/sse.js';
import { round } from '../lib/stats.js';
import type { SteadyWindow, WorkerReport } from '../sse-worker.js';

/** Where a fan-out runs: who writes the runs, who serves the listeners. */
export interface FanoutTarget {
  readonly system: string;
  /** PIDs whose RSS and CPU count (writer and reader instances; the same for a single server). */
  readonly pids: { readonly writer: readonly number[]; readonly reader: readonly number[] };
  readonly rss: { writer(): number; reader(): number };
  /** Creates run `index` (or prepares its request) and returns what each of its listeners requests. */
  createRun(agent: http.Agent, index: number, events: number, intervalMs: number): Promise<SseRequest>;
  /** The listener's request also creates the run (LangGraph /runs/stream): the stream's close is its end. */
  readonly closeIsEnd: boolean;
  /** Redis inspection, where the system uses Redis: instance ids of the writer and the reader. */
  readonly redis?: { readonly client: RedisClient; readonly writerId: string; readonly readerId: string; readonly serverPid: number };
  /** Events each run appends besides its data events (agentd: `status` and `end`). */
  readonly extraEventsPerRun: number;
  /** The Postgres processes whose CPU counts (default: every `postgres` process on the machine). */
  readonly postgresPids?: () => number[];
}

export interface FanoutResult {
  readonly system: string;
  readonly runs: number;
  readonly listenersPerRun: number;
  readonly eventsPerRun: number;
  readonly ratePerRun: number;
  readonly createMs: number;
  readonly connectMs: number;
  readonly listeners: WorkerReport;
  /** Events delivered per second within the steady window (`window`). */
  readonly deliveredPerSecond: number;
  readonly offeredPerSecond: number;
  readonly redisConnections?: { readonly writer: number; readonly reader: number; readonly names: string[] };
  readonly redisCommands?: { readonly total: number; readonly perEvent: number; readonly byCommand: Record<string, number> };
  /** Redis `used_memory` before the runs and at its peak while they stream (their streams, within STREAM_MAX_BYTES and the TTL). */
  readonly redisMemory?: { readonly baselineBytes: number; readonly peakBytes: number; readonly perRunBytes: number };
  readonly rss: {
    readonly baselineBytes: number;
    readonly peakBytes: number;
    readonly perRunBytes: number;
    readonly perListenerBytes: number;
    readonly writerPeakBytes: number;
    readonly readerPeakBytes: number;
  };
  /** The steady window: CPU is read at its start and end, and events counted by arrival within it. */
  readonly window: SteadyWindow & { readonly seconds: number };
  /** CPU of A + B + Redis + Postgres over the window per delivered event (µs): the performance issue's figure. */
  readonly serverCpuPerEventUs: number;
  /** CPU of the servers over the steady window (1.0 = one core), and of the listener process. */
  readonly cpu: {
    readonly writer: number;
    readonly reader: number;
    readonly redis: number | null;
    readonly postgres: number;
    readonly listenerProcess: number;
  };
}

const sumCpu = (pids: readonly number[]) => pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);

/** After the mark (every listener connected): the catch-up of listeners that connected late settles. */
const SETTLE_MS = 1_000;
/** Before the first run can end (its last event is due `durationS` after its creation began). */
const END_MARGIN_MS = 500;

/**
 * The steady window: from SETTLE_MS after the mark to just before the first-created run can
 * end, so every run streams at its full rate throughout and no start-up or wind-down is in it.
 */
export function steadyWindow(createStartMs: number, markMs: number, durationS: number): SteadyWindow {
  const window = { startMs: markMs + SETTLE_MS, endMs: createStartMs + durationS * 1000 - END_MARGIN_MS };
  if (window.endMs - window.startMs < 2_000) {
    throw new Error(`steady window too short (${window.endMs - window.startMs} ms): the runs took too long to create and connect`);
  }
  return window;
}

const sleepUntil = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms - Date.now())));

interface CpuReading {
  readonly at: number;
  readonly writer: number;
  readonly reader: number;
  readonly redis: number;
  readonly listener: number;
}

function readCpu(target: FanoutTarget, listenerPid: number): CpuReading {
  return {
    at: Date.now(),
    writer: sumCpu(target.pids.writer),
    reader: sumCpu(target.pids.reader),
    redis: target.redis === undefined ? 0 : cpuSeconds(target.redis.serverPid),
    listener: cpuSeconds(listenerPid),
  };
}

interface Sampled {
  peakWriter: number;
  peakReader: number;
  redisPeak: number;
  connWriter: number;
  connReader: number;
  readonly names: Set<string>;
}

/** RSS, Redis connections and memory every 0.5 s until `stop()`; the heap snapshot half-way. */
function startSampler(target: FanoutTarget, sampled: Sampled, halfwayMs: number, onHeapSnapshot?: () => void): () => Promise<void> {
  let sampling = true;
  let snapshotTaken = false;
  const loop = (async () => {
    while (sampling) {
      sampled.peakWriter = Math.max(sampled.peakWriter, target.rss.writer());
      if (target.pids.reader !== target.pids.writer) sampled.peakReader = Math.max(sampled.peakReader, target.rss.reader());
      if (target.redis !== undefined) {
        const w = await connectionsNamed(target.redis.client, `agentd:${target.redis.writerId}:`);
        const r = await connectionsNamed(target.redis.client, `agentd:${target.redis.readerId}:`);
        sampled.connWriter = Math.max(sampled.connWriter, w.length);
        sampled.connReader = Math.max(sampled.connReader, r.length);
        sampled.redisPeak = Math.max(sampled.redisPeak, await usedMemory(target.redis.client));
        for (const name of [...w, ...r]) sampled.names.add(name);
      }
      if (!snapshotTaken && onHeapSnapshot !== undefined && Date.now() > halfwayMs) {
        snapshotTaken = true;
        onHeapSnapshot();
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  })();
  return async () => {
    sampling = false;
    await loop;
  };
}

interface FanoutOptions {
  runs: number;
  listenersPerRun: number;
  ratePerRun: number;
  durationS: number;
  onHeapSnapshot?: () => void;
}

/** Creates the runs and opens their listeners; resolves once every listener has its headers. */
async function createAndConnect(target: FanoutTarget, pool: ListenerPool, agent: http.Agent, options: FanoutOptions) {
  const intervalMs = Math.round(1000 / options.ratePerRun);
  const events = options.ratePerRun * options.durationS;
  const createStartMs = Date.now();
  await runPool(options.runs, 64, async (index) => {
    const request = await target.createRun(agent, index, events, intervalMs);
    for (let l = 0; l < options.listenersPerRun; l += 1) pool.open(request, events, target.closeIsEnd);
  });
  const createMs = Date.now() - createStartMs;
  const total = options.runs * options.listenersPerRun;
  const connected = await pool.connected(total, 120_000);
  if (!connected.ok || connected.failed > 0) {
    throw new Error(
      `only ${connected.connected} of ${total} listeners connected (${connected.failed} failed: ${connected.failures.join('; ')})`,
    );
  }
  return { createStartMs, createMs, connectMs: Date.now() - createStartMs, events };
}

/**
 * N runs emitting `ratePerRun` events/s for `durationS`, each with `listenersPerRun` SSE
 * listeners (in the listener process), or one run with many listeners.
 */
export async function runFanout(target: FanoutTarget, options: FanoutOptions): Promise<FanoutResult> {
  const pool = await ListenerPool.start();
  const agent = keepAliveAgent(64);
  try {
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const baselineWriter = target.rss.writer();
    const baselineReader = target.pids.reader === target.pids.writer ? 0 : target.rss.reader();
    const before = target.redis === undefined ? undefined : await commandCalls(target.redis.client);
    const redisBaseline = target.redis === undefined ? 0 : await usedMemory(target.redis.client);
    const sampled: Sampled = {
      peakWriter: baselineWriter,
      peakReader: baselineReader,
      redisPeak: redisBaseline,
      connWriter: 0,
      connReader: 0,
      names: new Set(),
    };
    const created = await createAndConnect(target, pool, agent, options);
    const markMs = await pool.mark();
    const window = steadyWindow(created.createStartMs, markMs, options.durationS);
    const stopSampler = startSampler(target, sampled, markMs + (options.durationS * 1000) / 2, options.onHeapSnapshot);
    await sleepUntil(window.startMs);
    // Postgres (archive inserts, status writes) runs on the same 2 cores; its backends live for the window.
    const postgresCpu = cpuMeter(target.postgresPids ?? postgresPids);
    const cpuStart = readCpu(target, pool.pid);
    await sleepUntil(window.endMs);
    const cpuEnd = readCpu(target, pool.pid);
    const postgresSeconds = postgresCpu();
    const report = await pool.report(options.durationS * 1000 + 90_000, { startMs: cpuStart.at, endMs: cpuEnd.at });
    await stopSampler();
    const after = target.redis === undefined || before === undefined ? undefined : await commandCalls(target.redis.client);
    const delta = before === undefined || after === undefined ? undefined : commandDelta(before, after);
    return fanoutResult(target, options, {
      created,
      report,
      sampled,
      baseline: { writer: baselineWriter, reader: baselineReader, redis: redisBaseline },
      cpuStart,
      cpuEnd,
      postgresSeconds,
      delta,
    });
  } finally {
    agent.destroy();
    await pool.stop();
  }
}

function fanoutResult(
  target: FanoutTarget,
  options: FanoutOptions,
  m: {
    created: Awaited<ReturnType<typeof createAndConnect>>;
    report: WorkerReport;
    sampled: Sampled;
    baseline: { writer: number; reader: number; redis: number };
    cpuStart: CpuReading;
    cpuEnd: CpuReading;
    postgresSeconds: number;
    delta: ReturnType<typeof commandDelta> | undefined;
  },
): FanoutResult {
  const { sampled, report, cpuStart, cpuEnd } = m;
  const windowS = Math.max(0.001, (cpuEnd.at - cpuStart.at) / 1000);
  const cores = (seconds: number) => round(seconds / windowS, 2);
  const peak = sampled.peakWriter + sampled.peakReader;
  const baseline = m.baseline.writer + m.baseline.reader;
  const appended = options.runs * (m.created.events + target.extraEventsPerRun);
  const deliveredPerSecond = report.window?.eventsPerSecond ?? report.steadyEventsPerSecond;
  const separateReader = target.pids.reader !== target.pids.writer;
  const serverSeconds =
    cpuEnd.writer -
    cpuStart.writer +
    (separateReader ? cpuEnd.reader - cpuStart.reader : 0) +
    cpuEnd.redis -
    cpuStart.redis +
    m.postgresSeconds;
  return {
    system: target.system,
    runs: options.runs,
    listenersPerRun: options.listenersPerRun,
    eventsPerRun: m.created.events,
    ratePerRun: options.ratePerRun,
    createMs: m.created.createMs,
    connectMs: m.created.connectMs,
    listeners: report,
    deliveredPerSecond,
    offeredPerSecond: options.runs * options.listenersPerRun * options.ratePerRun,
    window: { startMs: cpuStart.at, endMs: cpuEnd.at, seconds: round(windowS, 3) },
    serverCpuPerEventUs: round((serverSeconds / windowS / Math.max(1, deliveredPerSecond)) * 1e6, 1),
    ...(target.redis === undefined
      ? {}
      : {
          redisConnections: { writer: sampled.connWriter, reader: sampled.connReader, names: [...sampled.names].sort() },
          redisMemory: {
            baselineBytes: m.baseline.redis,
            peakBytes: sampled.redisPeak,
            perRunBytes: Math.round((sampled.redisPeak - m.baseline.redis) / options.runs),
          },
        }),
    ...(m.delta === undefined
      ? {}
      : { redisCommands: { total: m.delta.total, perEvent: round(m.delta.total / appended, 3), byCommand: m.delta.byCommand } }),
    rss: {
      baselineBytes: baseline,
      peakBytes: peak,
      perRunBytes: Math.round((peak - baseline) / options.runs),
      perListenerBytes: Math.round((peak - baseline) / (options.runs * options.listenersPerRun)),
      writerPeakBytes: sampled.peakWriter,
      readerPeakBytes: sampled.peakReader,
    },
    cpu: {
      writer: cores(cpuEnd.writer - cpuStart.writer),
      reader: separateReader ? cores(cpuEnd.reader - cpuStart.reader) : 0,
      redis: target.redis === undefined ? null : cores(cpuEnd.redis - cpuStart.redis),
      postgres: cores(m.postgresSeconds),
      listenerProcess: cores(cpuEnd.listener - cpuStart.listener),
    },
  };
}
