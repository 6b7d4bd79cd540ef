import type { z } from 'zod';
import type { Logger } from './logger.js';
import type { AgentLlm } from './chat.js';
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
   * dropped and it resolves at once (`signal` says why). `type` is any EVENT_TYPE_PATTERN name
   * but `status`, `error` and `end`; another throws a TypeError at once.
   */
  emit(type: AgentEventType, data: unknown): Promise<void>;
  /** The chat gateway (LLM_PROVIDERS): this run's requests, bounded by its signal; rejects when no provider is configured. */
  readonly llm: AgentLlm;
  /**
   * Runs `exportName` of the ES module at `modulePath` (absolute, a file: URL, or relative to
   * AGENTS_DIR) on the worker-thread pool with `args` (structured-cloned both ways), so CPU-heavy
   * work does not stall other runs. Cancel aborts it, queued or running; a throw in the worker
   * rejects with its message; a full queue (OFFLOAD_QUEUE_MAX) rejects with an error of code
   * `offload_queue_full` (uncaught, the run fails `agent_error` saying so; other runs go on).
   */
  offload<T = unknown>(modulePath: string | URL, exportName: string, args?: unknown): Promise<T>;
}

/** What the runtime gives each run besides its events: the chat gateway and the offload pool, bound to the run. */
export interface AgentServices {
  readonly llm: AgentLlm;
  offload<T = unknown>(modulePath: string | URL, exportName: string, args?: unknown): Promise<T>;
}

/** Makes a run's services; `agent` names the asking agent for LLM routing rules. */
export type AgentServicesFactory = (run: {
  readonly runId: string;
  readonly agent: string;
  readonly model: string | null;
  readonly signal: AbortSignal;
  readonly logger: Logger;
}) => AgentServices;

/** An agent: validated input in, events out. Throwing fails the run with `agent_error` (a RunFailure: with its code). */
export interface Agent<I = unknown> {
  readonly name: string;
  readonly description: string;
  /** Validates (and may default) the run's `input`; its JSON Schema is published by GET /v1/agents. */
  readonly inputSchema: z.ZodType<I>;
  run(ctx: AgentContext<I>): Promise<void>;
}
