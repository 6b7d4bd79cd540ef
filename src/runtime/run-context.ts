import {
  type AgentContext,
  type AgentLlm,
  type AgentServices,
  agentEventTypeProblem,
  type AgentEventType,
  type EventId,
  EventIdGenerator,
  eventJson,
  type EventType,
  type Logger,
  type RuntimeEventType,
} from '../domain/index.js';
import type { EventLog } from '../streaming/event-log.js';

export interface RunContextOptions<I> {
  readonly runId: string;
  readonly input: I;
  readonly model: string | null;
  readonly sessionId: string | null;
  readonly signal: AbortSignal;
  readonly logger: Logger;
  /** The chat gateway and the offload pool, bound to this run. */
  readonly services: AgentServices;
  readonly eventLog: Pick<EventLog, 'append' | 'drain'>;
  readonly maxEvents: number;
  readonly maxEventBytes: number;
  /** The run's backlog (events not yet archived or written) beyond which emit waits (RUN_EVENT_BACKLOG_BYTES). */
  readonly backlogBytes: number;
  /** How long emit waits for the backlog to drain before the run fails (RUN_EVENT_BACKLOG_WAIT_MS). */
  readonly backlogWaitMs: number;
  /** Called once when the agent exceeds an event limit; the runtime aborts the run. */
  readonly onEventLimit: (message: string) => void;
  /** Called once when the run's backlog could not drain (or ran past twice its bound); the runtime aborts the run. */
  readonly onEventBacklog: (detail: string) => void;
}

/** What emit returns unless the run must wait: one settled promise for every event (no allocation). */
const ACCEPTED: Promise<void> = Promise.resolve();

/**
 * One run's view for its agent, and the runtime's pen for the run's events: assigns ids,
 * enforces MAX_EVENTS_PER_RUN / MAX_EVENT_BYTES, remembers the last `message` as the output,
 * and drops whatever the agent emits once the runtime has stopped listening to it. Bounds the
 * run's backlog (back-pressure): past `backlogBytes` emit waits for the events to be written;
 * if they are not within `backlogWaitMs`, or the agent emits on without waiting past twice the
 * bound, the run fails (`event_backlog`).
 */
export class RunContext<I = unknown> implements AgentContext<I> {
  readonly runId: string;
  readonly input: I;
  readonly model: string | null;
  readonly sessionId: string | null;
  readonly signal: AbortSignal;
  readonly logger: Logger;
  readonly llm: AgentLlm;
  private readonly ids = new EventIdGenerator();
  private agentEvents = 0;
  private agentOpen = true;
  private lastMessage: unknown = undefined;
  private lastId: EventId | null = null;
  /** The wait for the backlog to drain under way (emits made meanwhile share it). */
  private draining: Promise<void> | undefined;

  constructor(private readonly options: RunContextOptions<I>) {
    this.runId = options.runId;
    this.input = options.input;
    this.model = options.model;
    this.sessionId = options.sessionId;
    this.signal = options.signal;
    this.logger = options.logger;
    this.llm = options.services.llm;
  }

  offload<T = unknown>(modulePath: string | URL, exportName: string, args?: unknown): Promise<T> {
    return this.options.services.offload<T>(modulePath, exportName, args);
  }

  emit(type: AgentEventType, data: unknown): Promise<void> {
    const problem = agentEventTypeProblem(type);
    if (problem !== null) throw new TypeError(`ctx.emit: ${problem}`);
    if (!this.agentOpen) return ACCEPTED; // the run has ended: late events from an agent that ignored its signal
    const json = eventJson(data);
    const bytes = Buffer.byteLength(json);
    if (bytes > this.options.maxEventBytes) {
      return this.limitExceeded(`an event of ${bytes} bytes exceeds MAX_EVENT_BYTES (${this.options.maxEventBytes})`);
    }
    if (this.agentEvents >= this.options.maxEvents) {
      return this.limitExceeded(`the run exceeded MAX_EVENTS_PER_RUN (${this.options.maxEvents})`);
    }
    this.agentEvents += 1;
    // The output is the value as stored: when a NUL was replaced in the text, that text's value.
    if (type === 'message') this.lastMessage = json.includes('\\ufffd') ? (JSON.parse(json) as unknown) : data;
    const backlog = this.append(type, json);
    return backlog <= this.options.backlogBytes ? ACCEPTED : this.backPressure(backlog);
  }

  /** Events of the runtime itself (`status`, `error`, `end`), never limited. */
  emitSystem(type: RuntimeEventType, data: unknown): void {
    this.append(type, eventJson(data));
  }

  /** Stops accepting the agent's events; idempotent. */
  closeToAgent(): void {
    this.agentOpen = false;
  }

  /** Data of the last `message` event, undefined when none. */
  get output(): unknown {
    return this.lastMessage;
  }

  private limitExceeded(message: string): Promise<void> {
    this.agentOpen = false;
    this.options.onEventLimit(message);
    return ACCEPTED;
  }

  /** The backlog passed its bound: wait for it to drain, or fail the run (past twice the bound, or not drained in time). */
  private backPressure(backlog: number): Promise<void> {
    const { backlogBytes, backlogWaitMs } = this.options;
    if (backlog > 2 * backlogBytes) {
      this.backlogExceeded(
        `${backlog} bytes of its events were not yet written, more than twice RUN_EVENT_BACKLOG_BYTES (${backlogBytes}); ` +
          'an agent must await ctx.emit',
      );
      return ACCEPTED;
    }
    this.draining ??= this.options.eventLog
      .drain(backlogWaitMs, this.signal)
      .catch(() => false) // never rejects: an agent that does not await emit must not meet an unhandled rejection
      .then((drained) => {
        this.draining = undefined;
        if (!drained && !this.signal.aborted) {
          this.backlogExceeded(`its events were not written within RUN_EVENT_BACKLOG_WAIT_MS (${backlogWaitMs} ms)`);
        }
      });
    return this.draining;
  }

  private backlogExceeded(detail: string): void {
    if (!this.agentOpen) return;
    this.agentOpen = false;
    this.options.onEventBacklog(detail);
  }

  /** Appends the next event; returns the run's backlog in bytes. */
  private append(type: EventType, json: string): number {
    const id = this.ids.next();
    const backlog = this.options.eventLog.append(this.runId, { id, prev: this.lastId, type, json });
    this.lastId = id;
    return backlog;
  }
}
