import { setImmediate, setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import type { Agent } from '../domain/index.js';

const simulateInput = z
  .object({
    events: z.number().int().min(0).max(100_000).default(10),
    interval_ms: z.number().int().min(0).max(60_000).default(100),
    payload_bytes: z.number().int().min(0).max(65_536).default(16),
    fail_at: z.number().int().min(0).optional(),
    ignore_cancel: z.boolean().default(false),
    ignore_backpressure: z.boolean().default(false),
  })
  .strict();

export type SimulateInput = z.output<typeof simulateInput>;

/** Events emitted back to back before yielding to the event loop when interval_ms is 0. */
const BURST = 100;

export class SimulatedFailure extends Error {
  constructor(seq: number) {
    super(`simulated failure at event ${seq}`);
    this.name = 'SimulatedFailure';
  }
}

/**
 * `sleep(ms)` that rejects when the signal aborts, with one abort listener for all its
 * pauses rather than one per pause (which showed in the fan-out profile).
 */
function pauser(signal: AbortSignal | undefined): (ms: number) => Promise<void> {
  if (signal === undefined) return (ms) => sleep(ms);
  let current: { timer: NodeJS.Timeout; reject: (reason: unknown) => void } | undefined;
  signal.addEventListener(
    'abort',
    () => {
      if (current === undefined) return;
      clearTimeout(current.timer);
      current.reject(signal.reason);
    },
    { once: true },
  );
  return (ms) =>
    new Promise<void>((resolve, reject) => {
      if (signal.aborted) return reject(signal.reason as Error);
      const timer = setTimeout(() => {
        current = undefined;
        resolve();
      }, ms);
      current = { timer, reject };
    });
}

/** Emits `token` events at a steady pace: the load generator of tests and the benchmark. */
export const simulateAgent: Agent<SimulateInput> = {
  name: 'simulate',
  description:
    'Emits `events` token events `interval_ms` apart with `payload_bytes` of text; `fail_at` throws at that event; `ignore_cancel` ignores the AbortSignal; `ignore_backpressure` emits without awaiting ctx.emit.',
  inputSchema: z.preprocess((value) => value ?? {}, simulateInput),
  async run(ctx) {
    const {
      events,
      interval_ms: intervalMs,
      payload_bytes: payloadBytes,
      fail_at: failAt,
      ignore_cancel: ignoreCancel,
      ignore_backpressure: ignoreBackpressure,
    } = ctx.input;
    const text = 'x'.repeat(payloadBytes);
    const signal = ignoreCancel ? undefined : ctx.signal;
    const pause = pauser(signal);
    for (let seq = 0; seq < events; seq += 1) {
      if (seq > 0) {
        if (intervalMs > 0) await pause(intervalMs);
        else if (seq % BURST === 0) await setImmediate(undefined, { signal });
      }
      if (seq === failAt) throw new SimulatedFailure(seq);
      const accepted = ctx.emit('token', { seq, ts: Date.now(), text });
      if (!ignoreBackpressure) await accepted; // the run's events are written before it makes more
    }
  },
};
