import type { RunError } from './run.js';
import type { BuiltInEventType, CustomEventType } from './run-event.js';
import type { ActiveStatus, FinalStatus, RunStatus } from './run-status.js';

/**
 * The JSON shapes of the HTTP contract (docs/API.md), as types: snake_case, as on the wire.
 * The server's views are checked against them (`http/run-view.ts`), and the client
 * (`agentd/client`) speaks them, importing them as types only, so it never loads server code.
 * The contract changes only by adding: a view may carry more fields than these.
 */

/** The body of `POST /v1/runs` (and `/v1/runs/stream`, `/v1/runs/wait`). */
export interface CreateRunBody {
  readonly agent: string;
  /** Any JSON; default null. The agent's schema validates it. */
  readonly input?: unknown;
  readonly session_id?: string | null;
  readonly model?: string | null;
  /** Counts from the start of `running`; default RUN_TIMEOUT_MS, at most MAX_RUN_TIMEOUT_MS. */
  readonly timeout_ms?: number | null;
  readonly metadata?: Readonly<Record<string, unknown>> | null;
  /** Where agentd POSTs the run record when the run ends (signed; Standard Webhooks). */
  readonly webhook?: string;
}

/** A run as `GET /v1/runs/:id` shows it (also the answer of `POST /v1/runs` and each entry of a list). */
export interface RunView {
  readonly id: string;
  readonly status: RunStatus;
  readonly agent: string;
  readonly session_id: string | null;
  /** ISO 8601 UTC. */
  readonly created_at: string;
  readonly started_at: string | null;
  readonly finished_at: string | null;
  /** Why it failed (with `failed`, `timed_out`, `interrupted`). */
  readonly error?: RunError;
  /** Data of the run's last `message` event, when it had one. */
  readonly output?: unknown;
  readonly instance_id: string;
  /** The path of its event stream, `/v1/runs/<id>/events`. */
  readonly events_url: string;
  /** The delivery of its record to its webhook, for a run created with one. */
  readonly webhook?: {
    readonly url: string;
    readonly state: 'pending' | 'delivered' | 'failed';
    readonly attempts: number;
    readonly last_status?: number;
    readonly last_error?: string;
  };
}

/** One page of `GET /v1/runs`, newest first; `next_cursor` is null on the last page. */
export interface RunPageView {
  readonly runs: readonly RunView[];
  readonly next_cursor: string | null;
}

/** The answer of `POST /v1/runs/:id/cancel`: the run's status after the request (final if it had ended). */
export interface CancelView {
  readonly id: string;
  readonly status: RunStatus;
}

/** `GET /v1/agents`, one entry. */
export interface AgentView {
  readonly name: string;
  readonly description: string;
  /** The JSON Schema of the agent's `input`. */
  readonly input_schema: unknown;
}

/** `POST /v1/admin/accounts`: the account and its API key, shown once. */
export interface CreatedAccountView {
  readonly id: string;
  readonly name: string;
  readonly tier: string;
  readonly created_at: string;
  readonly api_key: string;
  /** The key's first 8 characters (not secret), which name it for revocation. */
  readonly key_prefix: string;
}

/** One limit of `GET /v1/admin/capacity` and where its value came from. */
export interface LimitView {
  readonly value: number;
  readonly source: 'auto' | 'env' | 'default';
}

/** A figure the instance was sized for and the limit that set it (`cgroup cpu.max /sys/fs/cgroup/…`, `os.totalmem()`, …). */
export interface SourcedFigureView {
  readonly value: number;
  readonly source: string;
}

/** How the answering process was sized: the figures, each with the limit that won, and what bounded its run slots. */
export interface SizingView {
  readonly cpus: SourcedFigureView;
  readonly memory_bytes: SourcedFigureView;
  readonly run_slots: {
    readonly value: number;
    /** `env`: MAX_CONCURRENT_AGENT_RUNS; `cap`: 2000 per process; else the figure that bounded the auto size. */
    readonly bound_by: 'cpus' | 'memory' | 'cap' | 'env';
    /** Processes sharing the machine (WORKERS); auto run slots are each one's share. */
    readonly workers: number;
  };
}

/** `GET /v1/admin/capacity`: the answering instance's sizing and live use (more sections than typed here). */
export interface CapacityView {
  readonly instance_id: string;
  readonly detected: { readonly cpus: number; readonly memory_bytes: number; readonly [key: string]: unknown };
  /** Absent from servers older than this field. */
  readonly sizing?: SizingView;
  readonly limits: Readonly<Record<string, LimitView>>;
  readonly runs: { readonly capacity: number; readonly in_use: number; readonly queued: number; readonly [key: string]: unknown };
  readonly [section: string]: unknown;
}

/** Every error answer: `{"error": {"code", "message", ...details}}` (`limit`, `active`, `retry_after_s`, `field`). */
export interface ErrorView {
  readonly error: { readonly code: string; readonly message: string; readonly [detail: string]: unknown };
}

/** The data of each event type, as the runtime and the built-in agents emit it. */
export interface EventDataByType {
  /** Sent for `queued` when the run waits for a slot, and for `running`. */
  readonly status: { readonly status: ActiveStatus };
  readonly message: { readonly role: string; readonly content: unknown; readonly [key: string]: unknown };
  /** `text` always; agents may add fields (`simulate` adds `seq` and `ts`). */
  readonly token: { readonly text: string; readonly [key: string]: unknown };
  readonly tool: { readonly name: string; readonly input: unknown; readonly output: unknown; readonly [key: string]: unknown };
  /** Before the `end` of a run that did not complete or get cancelled. */
  readonly error: RunError;
  /** Always the last event of a run. */
  readonly end: { readonly status: FinalStatus; readonly error?: RunError };
}

/** One Server-Sent Event of `GET /v1/runs/:id/events`: its id `<ms>-<seq>`, its type and its data, by type. */
export type EventView = BuiltInEventView | CustomEventView;

/** An event of a built-in type, its data typed by its type. */
export type BuiltInEventView = {
  readonly [T in BuiltInEventType]: { readonly id: string; readonly type: T; readonly data: EventDataByType[T] };
}[BuiltInEventType];

/** An event of a type an agent defined for itself: its data is whatever the agent emitted. */
export interface CustomEventView {
  readonly id: string;
  readonly type: CustomEventType;
  readonly data: unknown;
}
