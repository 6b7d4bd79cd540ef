/**
 * The fan-out listeners, in a process of their own so the bench's orchestrator is not the
 * bottleneck: opens SSE streams on raw node:http when told to, checks every data event for
 * loss, duplication and order, and reports delivery latency (event `ts` to arrival) plus its
 * own CPU use and event-loop delay, so a run can show this process was not the limit.
 */
import http from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { openSse, type SseRequest } from './lib/sse.js';
import { round, summarize } from './lib/stats.js';

export type WorkerCommand =
  | { readonly t: 'open'; readonly request: SseRequest; readonly expected: number; readonly closeIsEnd: boolean }
  | { readonly t: 'connected'; readonly count: number; readonly timeoutMs: number }
  | { readonly t: 'mark' }
  | { readonly t: 'report'; readonly timeoutMs: number; readonly window?: SteadyWindow }
  | { readonly t: 'exit' };

/** The measured window (epoch ms, this machine's clock), set by the bench at its CPU readings. */
export interface SteadyWindow {
  readonly startMs: number;
  readonly endMs: number;
}

export interface WorkerReport {
  readonly listeners: number;
  readonly connected: number;
  readonly failed: number;
  readonly failures: string[];
  readonly ended: number;
  /** Closed by the server (or the network) before the run's end event. */
  readonly cutOff: number;
  readonly expectedEvents: number;
  readonly received: number;
  readonly unique: number;
  readonly duplicates: number;
  readonly lost: number;
  readonly outOfOrder: number;
  readonly endStatuses: Record<string, number>;
  /** Delivery latency (ms) of events emitted after the `mark` (all listeners connected). */
  readonly latencySteady: ReturnType<typeof summarize>;
  /** Delivery latency of every event, catch-up included. */
  readonly latencyAll: ReturnType<typeof summarize>;
  /** Events that arrived between the mark and the report, per second. */
  readonly steadyEventsPerSecond: number;
  readonly firstArrivalMs: number;
  readonly lastArrivalMs: number;
  readonly markMs: number;
  /** This process: CPU time over wall time since the mark (1.0 = one core busy), and loop delay. */
  readonly cpuUtilization: number;
  readonly loopDelayP99Ms: number;
  readonly loopDelayMaxMs: number;
  readonly rssBytes: number;
  /** Events that *arrived* within the bench's CPU window (emit `ts` + latency), and their latency. */
  readonly window?: SteadyWindow & {
    readonly delivered: number;
    readonly eventsPerSecond: number;
    readonly latency: ReturnType<typeof summarize>;
  };
}

interface Listener {
  readonly expected: number;
  readonly closeIsEnd: boolean;
  readonly seen: Uint8Array;
  unique: number;
  lastSeq: number;
  status: number;
  ended: boolean;
  closed: boolean;
}

const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
const listeners: Listener[] = [];
let connected = 0;
let failed = 0;
const failures: string[] = [];
let received = 0;
let duplicates = 0;
let outOfOrder = 0;
let firstArrivalMs = 0;
let lastArrivalMs = 0;
let markMs = Number.POSITIVE_INFINITY;
let steadyCount = 0;
let markCpu = process.cpuUsage();
let markWallMs = Date.now();
const endStatuses: Record<string, number> = {};
let latAll = new Float64Array(1 << 16);
let latTs = new Float64Array(1 << 16);
let latCount = 0;
const loopDelay = monitorEventLoopDelay({ resolution: 10 });

function recordLatency(ts: number, latency: number): void {
  if (latCount === latAll.length) {
    const grownAll = new Float64Array(latAll.length * 2);
    grownAll.set(latAll);
    latAll = grownAll;
    const grownTs = new Float64Array(latTs.length * 2);
    grownTs.set(latTs);
    latTs = grownTs;
  }
  latAll[latCount] = latency;
  latTs[latCount] = ts;
  latCount += 1;
}

function open(command: Extract<WorkerCommand, { t: 'open' }>): void {
  const listener: Listener = {
    expected: command.expected,
    closeIsEnd: command.closeIsEnd,
    seen: new Uint8Array(command.expected),
    unique: 0,
    lastSeq: -1,
    status: 0,
    ended: false,
    closed: false,
  };
  listeners.push(listener);
  openSse(agent, command.request, {
    onOpen(status) {
      listener.status = status;
      if (status === 200) connected += 1;
      else {
        failed += 1;
        if (failures.length < 5) failures.push(`HTTP ${status} from ${command.request.url}`);
      }
    },
    onEvent(event, arrivalMs) {
      if (event.event === 'end') {
        listener.ended = true;
        let status = 'unknown';
        try {
          status = String((JSON.parse(event.data) as { status?: unknown }).status);
        } catch {
          // counted as 'unknown' below
        }
        endStatuses[status] = (endStatuses[status] ?? 0) + 1;
        return;
      }
      if (event.event !== 'token' && event.event !== 'custom') return;
      const data = JSON.parse(event.data) as { seq?: unknown; ts?: unknown };
      if (typeof data.seq !== 'number' || typeof data.ts !== 'number') return;
      received += 1;
      if (firstArrivalMs === 0) firstArrivalMs = arrivalMs;
      lastArrivalMs = arrivalMs;
      if (data.ts >= markMs) steadyCount += 1;
      recordLatency(data.ts, arrivalMs - data.ts);
      if (data.seq < listener.lastSeq) outOfOrder += 1;
      listener.lastSeq = Math.max(listener.lastSeq, data.seq);
      if (data.seq >= 0 && data.seq < listener.expected) {
        if (listener.seen[data.seq] === 1) duplicates += 1;
        else {
          listener.seen[data.seq] = 1;
          listener.unique += 1;
        }
      }
    },
    onClose(error) {
      listener.closed = true;
      if (listener.closeIsEnd && error === null && listener.status === 200) listener.ended = true;
      if (error !== null && listener.status === 0) {
        failed += 1;
        if (failures.length < 5) failures.push(`${error.message} (${command.request.url})`);
      }
    },
  });
}

async function waitUntil(predicate: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return true;
}

function windowFigures(window: SteadyWindow): NonNullable<WorkerReport['window']> {
  const inWindow: number[] = [];
  for (let i = 0; i < latCount; i += 1) {
    const arrival = (latTs[i] as number) + (latAll[i] as number);
    if (arrival >= window.startMs && arrival < window.endMs) inWindow.push(latAll[i] as number);
  }
  const seconds = Math.max(0.001, (window.endMs - window.startMs) / 1000);
  return { ...window, delivered: inWindow.length, eventsPerSecond: round(inWindow.length / seconds, 0), latency: summarize(inWindow) };
}

function report(window: SteadyWindow | undefined): WorkerReport {
  const cpu = process.cpuUsage(markCpu);
  const wallMs = Math.max(1, Date.now() - markWallMs);
  const steady: number[] = [];
  for (let i = 0; i < latCount; i += 1) if ((latTs[i] as number) >= markMs) steady.push(latAll[i] as number);
  const expectedEvents = listeners.reduce((sum, l) => sum + l.expected, 0);
  const unique = listeners.reduce((sum, l) => sum + l.unique, 0);
  const steadyWindowMs = Math.max(1, lastArrivalMs - markMs);
  return {
    listeners: listeners.length,
    connected,
    failed,
    failures,
    ended: listeners.filter((l) => l.ended).length,
    cutOff: listeners.filter((l) => l.closed && !l.ended && l.status === 200).length,
    expectedEvents,
    received,
    unique,
    duplicates,
    lost: expectedEvents - unique,
    outOfOrder,
    endStatuses,
    latencySteady: summarize(steady),
    latencyAll: summarize(latAll.subarray(0, latCount)),
    steadyEventsPerSecond: round((steadyCount * 1000) / steadyWindowMs, 0),
    firstArrivalMs,
    lastArrivalMs,
    markMs,
    cpuUtilization: round((cpu.user + cpu.system) / 1000 / wallMs, 3),
    loopDelayP99Ms: round(loopDelay.percentile(99) / 1e6, 2),
    loopDelayMaxMs: round(loopDelay.max / 1e6, 2),
    rssBytes: process.memoryUsage.rss(),
    ...(window === undefined ? {} : { window: windowFigures(window) }),
  };
}

loopDelay.enable();
process.on('message', (message: WorkerCommand) => {
  switch (message.t) {
    case 'open':
      open(message);
      break;
    case 'connected':
      void waitUntil(() => connected + failed >= message.count, message.timeoutMs).then((ok) =>
        process.send?.({ t: 'connected', ok, connected, failed, failures }),
      );
      break;
    case 'mark':
      markMs = Date.now();
      markWallMs = markMs;
      markCpu = process.cpuUsage();
      loopDelay.reset();
      process.send?.({ t: 'marked', markMs });
      break;
    case 'report':
      void waitUntil(() => listeners.every((l) => l.closed), message.timeoutMs).then(() =>
        process.send?.({ t: 'report', report: report(message.window) }),
      );
      break;
    case 'exit':
      process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));
process.send?.({ t: 'ready' });
