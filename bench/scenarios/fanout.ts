import type http from 'node:http';
import { commandCalls, commandDelta, connectionsNamed, type RedisClient, usedMemory } from '../lib/infra.js';
import { keepAliveAgent, runPool } from '../lib/http.js';
import { ListenerPool } from '../lib/listener-pool.js';
import { cpuMeter, cpuSeconds, postgresPids } from '../lib/procs.js';
import type { SseRequest } from '../lib/sse.js';
import { round } from '../lib/stats.js';
import type { WorkerReport } from '../sse-worker.js';

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

/**
 * N runs emitting `ratePerRun` events/s for `durationS`, each with `listenersPerRun` SSE
 * listeners (in the listener process), or one run with many listeners.
 */
export async function runFanout(
  target: FanoutTarget,
  options: { runs: number; listenersPerRun: number; ratePerRun: number; durationS: number; onHeapSnapshot?: () => void },
): Promise<FanoutResult> {
  const intervalMs = Math.round(1000 / options.ratePerRun);
  const events = options.ratePerRun * options.durationS;
  const pool = await ListenerPool.start();
  const agent = keepAliveAgent(64);
  try {
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const baselineWriter = target.rss.writer();
    const baselineReader = target.pids.reader === target.pids.writer ? 0 : target.rss.reader();
    const before = target.redis === undefined ? undefined : await commandCalls(target.redis.client);
    const redisBaseline = target.redis === undefined ? 0 : await usedMemory(target.redis.client);
    let redisPeak = redisBaseline;

    const createStart = Date.now();
    await runPool(options.runs, 64, async (index) => {
      const request = await target.createRun(agent, index, events, intervalMs);
      for (let l = 0; l < options.listenersPerRun; l += 1) pool.open(request, events, target.closeIsEnd);
    });
    const createMs = Date.now() - createStart;
    const total = options.runs * options.listenersPerRun;
    const connected = await pool.connected(total, 120_000);
    const connectMs = Date.now() - createStart;
    if (!connected.ok || connected.failed > 0) {
      throw new Error(
        `only ${connected.connected} of ${total} listeners connected (${connected.failed} failed: ${connected.failures.join('; ')})`,
      );
    }
    const markMs = await pool.mark();
    const redisPids = target.redis === undefined ? [] : [target.redis.serverPid];
    // Postgres (archive inserts, status writes) runs on the same 2 cores; its backends live for the window.
    const postgresCpu = cpuMeter(postgresPids);
    const cpuStart = {
      writer: sumCpu(target.pids.writer),
      reader: sumCpu(target.pids.reader),
      redis: sumCpu(redisPids),
      postgres: 0,
      at: Date.now(),
    };
    let cpuEnd = cpuStart;

    let peakWriter = baselineWriter;
    let peakReader = baselineReader;
    let connWriter = 0;
    let connReader = 0;
    const names = new Set<string>();
    let sampling = true;
    let snapshotTaken = false;
    const sampler = (async () => {
      while (sampling) {
        peakWriter = Math.max(peakWriter, target.rss.writer());
        if (target.pids.reader !== target.pids.writer) peakReader = Math.max(peakReader, target.rss.reader());
        if (Date.now() - markMs < options.durationS * 1000) {
          cpuEnd = {
            writer: sumCpu(target.pids.writer),
            reader: sumCpu(target.pids.reader),
            redis: sumCpu(redisPids),
            postgres: postgresCpu(),
            at: Date.now(),
          };
        }
        if (target.redis !== undefined) {
          const w = await connectionsNamed(target.redis.client, `agentd:${target.redis.writerId}:`);
          const r = await connectionsNamed(target.redis.client, `agentd:${target.redis.readerId}:`);
          connWriter = Math.max(connWriter, w.length);
          connReader = Math.max(connReader, r.length);
          redisPeak = Math.max(redisPeak, await usedMemory(target.redis.client));
          for (const name of [...w, ...r]) names.add(name);
        }
        if (!snapshotTaken && options.onHeapSnapshot !== undefined && Date.now() - markMs > (options.durationS * 1000) / 2) {
          snapshotTaken = true;
          options.onHeapSnapshot();
        }
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    })();
    const report = await pool.report(options.durationS * 1000 + 90_000);
    sampling = false;
    await sampler;
    const after = target.redis === undefined || before === undefined ? undefined : await commandCalls(target.redis.client);
    const windowS = Math.max(0.001, (cpuEnd.at - cpuStart.at) / 1000);
    const peak = peakWriter + peakReader;
    const baseline = baselineWriter + baselineReader;
    const appended = options.runs * (events + target.extraEventsPerRun);
    const delta = before === undefined || after === undefined ? undefined : commandDelta(before, after);
    return {
      system: target.system,
      runs: options.runs,
      listenersPerRun: options.listenersPerRun,
      eventsPerRun: events,
      ratePerRun: options.ratePerRun,
      createMs,
      connectMs,
      listeners: report,
      deliveredPerSecond: report.steadyEventsPerSecond,
      offeredPerSecond: options.runs * options.listenersPerRun * options.ratePerRun,
      ...(target.redis === undefined ? {} : { redisConnections: { writer: connWriter, reader: connReader, names: [...names].sort() } }),
      ...(target.redis === undefined
        ? {}
        : {
            redisMemory: {
              baselineBytes: redisBaseline,
              peakBytes: redisPeak,
              perRunBytes: Math.round((redisPeak - redisBaseline) / options.runs),
            },
          }),
      ...(delta === undefined
        ? {}
        : { redisCommands: { total: delta.total, perEvent: round(delta.total / appended, 3), byCommand: delta.byCommand } }),
      rss: {
        baselineBytes: baseline,
        peakBytes: peak,
        perRunBytes: Math.round((peak - baseline) / options.runs),
        perListenerBytes: Math.round((peak - baseline) / (options.runs * options.listenersPerRun)),
        writerPeakBytes: peakWriter,
        readerPeakBytes: peakReader,
      },
      cpu: {
        writer: round((cpuEnd.writer - cpuStart.writer) / windowS, 2),
        reader: target.pids.reader === target.pids.writer ? 0 : round((cpuEnd.reader - cpuStart.reader) / windowS, 2),
        redis: target.redis === undefined ? null : round((cpuEnd.redis - cpuStart.redis) / windowS, 2),
        postgres: round(cpuEnd.postgres / windowS, 2),
        listenerProcess: report.cpuUtilization,
      },
    };
  } finally {
    agent.destroy();
    await pool.stop();
  }
}
