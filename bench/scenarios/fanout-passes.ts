import type { PinReport } from '../lib/pinning.js';
import { medianPass, type Spread, spreadOf } from '../lib/passes.js';
import type { FanoutResult } from './fanout.js';

/** One fan-out pass, with what the bench did to the database before it. */
export type FanoutPass = FanoutResult & { readonly pinning?: PinReport };

/**
 * A fan-out step of several passes: the median pass's figures (by server CPU per delivered
 * event) at the top level, as a single pass's were, so older tooling reads it unchanged;
 * every pass in `passes`; and the spread of the key figures across passes.
 */
export type FanoutPasses = FanoutPass & {
  readonly passes: readonly FanoutPass[];
  readonly spread: {
    readonly serverCpuPerEventUs: Spread;
    readonly deliveredPerSecond: Spread;
    readonly latencyP99Ms: Spread;
  };
};

export function combineFanoutPasses(passes: readonly FanoutPass[]): FanoutPasses {
  const median = medianPass(passes, (p) => p.serverCpuPerEventUs);
  return {
    ...median,
    passes,
    spread: {
      serverCpuPerEventUs: spreadOf(passes.map((p) => p.serverCpuPerEventUs)),
      deliveredPerSecond: spreadOf(passes.map((p) => p.deliveredPerSecond)),
      latencyP99Ms: spreadOf(passes.map((p) => p.listeners.latencySteady.p99)),
    },
  };
}

/** One line for the log: the key figures of a pass. */
export function describePass(pass: FanoutResult): string {
  return `server CPU ${pass.serverCpuPerEventUs} µs/event, ${pass.deliveredPerSecond.toLocaleString('en-US')} events/s delivered, p99 ${pass.listeners.latencySteady.p99} ms, window ${pass.window.seconds} s, listener process ${pass.cpu.listenerProcess} cores`;
}
