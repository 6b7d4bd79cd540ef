import type { z } from 'zod';
import type { Logger } from './logger.js';
import type { AgentEventType } from './run-event.js';

/** What an agent sees of its run. */
export interface AgentContext<I = unknown> {
  readonly runId: string;
  readonly input: I;
  readonly model: string | null;
  readonly sessionId: string | null;
  /** Fires on cancel, timeout, event limit and shutdown. The runtime ends the run either way. */
  readonly signal: AbortSignal;
  readonly logger: Logger;
  /**
   * Records an event of the run. Resolves at once, unless the run's events not yet written
   * (archive, fast stream) passed RUN_EVENT_BACKLOG_BYTES: then once they are written. Await it:
   * a run whose events cannot be written in time, or that emits on past twice the bound without
   * waiting, ends `failed` (`event_backlog`). Never rejects; after the run has ended, events are
   * dropped and it resolves at once (`signal` says why).
   */
  emit(type: AgentEventType, data: unknown): Promise<void>;
}

/** An agent: validated input in, events out. Throwing fails the run with `agent_error` (a RunFailure: with its code). */
export interface Agent<I = unknown> {
  readonly name: string;
  readonly description: string;
  /** Validates (and may default) the run's `input`; its JSON Schema is published by GET /v1/agents. */
  readonly inputSchema: z.ZodType<I>;
  run(ctx: AgentContext<I>): Promise<void>;
}
