import {
  type AgentContext,
  type AgentEventType,
  type EventId,
  EventIdGenerator,
  eventJson,
  type EventType,
  type Logger,
  type RunEvent,
} from '../domain/index.js';

export interface RunContextOptions<I> {
  readonly runId: string;
  readonly input: I;
  readonly model: string | null;
  readonly sessionId: string | null;
  readonly signal: AbortSignal;
  readonly logger: Logger;
  readonly eventLog: { append(runId: string, event: RunEvent): void };
  readonly maxEvents: number;
  readonly maxEventBytes: number;
  /** Called once when the agent exceeds an event limit; the runtime aborts the run. */
  readonly onEventLimit: (message: string) => void;
}

/**
 * One run's view for its agent, and the runtime's pen for the run's events: assigns ids,
 * enforces MAX_EVENTS_PER_RUN / MAX_EVENT_BYTES, remembers the last `message` as the output,
 * and drops whatever the agent emits once the runtime has stopped listening to it.
 */
export class RunContext<I = unknown> implements AgentContext<I> {
  readonly runId: string;
  readonly input: I;
  readonly model: string | null;
  readonly sessionId: string | null;
  readonly signal: AbortSignal;
  readonly logger: Logger;
  private readonly ids = new EventIdGenerator();
  private agentEvents = 0;
  private agentOpen = true;
  private lastMessage: unknown = undefined;
  private lastId: EventId | null = null;

  constructor(private readonly options: RunContextOptions<I>) {
    this.runId = options.runId;
    this.input = options.input;
    this.model = options.model;
    this.sessionId = options.sessionId;
    this.signal = options.signal;
    this.logger = options.logger;
  }

  emit(type: AgentEventType, data: unknown): void {
    if (!this.agentOpen) return; // the run has ended: late events from an agent that ignored its signal
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
    this.append(type, json);
  }

  /** Events of the runtime itself (`status`, `error`, `end`), never limited. */
  emitSystem(type: Exclude<EventType, AgentEventType>, data: unknown): void {
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

  private limitExceeded(message: string): void {
    this.agentOpen = false;
    this.options.onEventLimit(message);
  }

  private append(type: EventType, json: string): void {
    const id = this.ids.next();
    this.options.eventLog.append(this.runId, { id, prev: this.lastId, type, json });
    this.lastId = id;
  }
}
