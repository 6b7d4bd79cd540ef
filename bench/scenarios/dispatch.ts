import { keepAliveAgent } from '../lib/http.js';
import { timeStream } from '../lib/sse.js';
import { type LatencySummary, summarize } from '../lib/stats.js';
import type { System } from '../lib/systems.js';

export interface DispatchResult {
  readonly system: string;
  readonly warmup: number;
  readonly count: number;
  readonly errors: number;
  readonly firstError?: string;
  /** Request sent to the response headers (agentd and queue-hop send them once the run is admitted). */
  readonly headersMs: LatencySummary;
  /** Request sent to the first SSE event (agentd: `status: running`; LangGraph: `metadata`). */
  readonly firstEventMs: LatencySummary;
  /** Request sent to the agent's own output event (`message`; LangGraph: `custom`). */
  readonly firstOutputMs: LatencySummary;
  /** Request sent to the end of the response. */
  readonly totalMs: LatencySummary;
}

/** One streaming echo run at a time over one keep-alive connection: time to the first event. */
export async function runDispatch(system: System, options: { warmup: number; count: number; tier: string }): Promise<DispatchResult> {
  const agent = keepAliveAgent(1);
  try {
    const token = await system.createAccount(agent, options.tier);
    const headers: number[] = [];
    const first: number[] = [];
    const output: number[] = [];
    const total: number[] = [];
    let errors = 0;
    let firstError: string | undefined;
    for (let i = 0; i < options.warmup + options.count; i += 1) {
      try {
        const timing = await timeStream(agent, system.echoStream(token, `hello ${i}`), system.isOutput);
        if (timing.status !== 200 || Number.isNaN(timing.firstOutputMs))
          throw new Error(`status ${timing.status}, ${timing.events.length} events`);
        if (i >= options.warmup) {
          headers.push(timing.headersMs);
          first.push(timing.firstEventMs);
          output.push(timing.firstOutputMs);
          total.push(timing.totalMs);
        }
      } catch (error) {
        errors += 1;
        firstError ??= error instanceof Error ? error.message : String(error);
      }
    }
    return {
      system: system.name,
      warmup: options.warmup,
      count: options.count,
      errors,
      ...(firstError === undefined ? {} : { firstError }),
      headersMs: summarize(headers),
      firstEventMs: summarize(first),
      firstOutputMs: summarize(output),
      totalMs: summarize(total),
    };
  } finally {
    agent.destroy();
  }
}
