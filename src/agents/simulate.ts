import { setImmediate, setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import type { Agent } from '../runtime/agent.js';

const simulateInput = z
  .object({
    events: z.number().int().min(0).max(100_000).default(10),
    interval_ms: z.number().int().min(0).max(60_000).default(100),
    payload_bytes: z.number().int().min(0).max(65_536).default(16),
    fail_at: z.number().int().min(0).optional(),
    ignore_cancel: z.boolean().default(false),
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

/** Emits `token` events at a steady pace: the load generator of tests and the benchmark. */
export const simulateAgent: Agent<SimulateInput> = {
  name: 'simulate',
  description:
    'Emits `events` token events `interval_ms` apart with `payload_bytes` of text; `fail_at` throws at that event; `ignore_cancel` ignores the AbortSignal.',
  inputSchema: z.preprocess((value) => value ?? {}, simulateInput),
  async run(ctx) {
    const { events, interval_ms: intervalMs, payload_bytes: payloadBytes, fail_at: failAt, ignore_cancel: ignoreCancel } = ctx.input;
    const text = 'x'.repeat(payloadBytes);
    const signal = ignoreCancel ? undefined : ctx.signal;
    for (let seq = 0; seq < events; seq += 1) {
      if (seq > 0) {
        if (intervalMs > 0) await sleep(intervalMs, undefined, { signal });
        else if (seq % BURST === 0) await setImmediate(undefined, { signal });
      }
      if (seq === failAt) throw new SimulatedFailure(seq);
      ctx.emit('token', { seq, ts: Date.now(), text });
    }
  },
};
