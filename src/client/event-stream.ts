import type { EventView } from '../domain/wire.js';
import { AgentdError, connectionFailed, errorFromResponse } from './errors.js';
import { type SseFrame, sseFrames } from './sse-parser.js';
import type { Transport } from './transport.js';
import { compareEventIds, type EventIdPair, isEventType, parseEventId } from './vocabulary.js';

export interface EventsOptions {
  /**
   * Start strictly after this event id: the last one the caller handled (from an earlier
   * stream's `lastEventId`). Default: from the run's first event.
   */
  readonly after?: string | null;
  /** Stops the stream: the iteration rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /**
   * A connection that brings nothing (no event, no `: ping`) for this long is dropped and
   * resumed, in ms; default 45000 (agentd pings every SSE_HEARTBEAT_MS, 15000); 0: never.
   */
  readonly idleTimeoutMs?: number;
}

/** What one connection came to, when it did not deliver the run's `end`. */
type Outcome = { readonly kind: 'past_end' } | { readonly kind: 'failed'; readonly error: AgentdError };

/** The idle clock of one connection: `touch` restarts it, `pause` stops it (while the caller holds an event). */
interface IdleWatch {
  touch(): void;
  pause(): void;
}

const DEFAULT_IDLE_TIMEOUT_MS = 45_000;

/**
 * A run's events, each exactly once and in order, ending with its `end` event. Iterate it once
 * (`for await`); breaking out closes the connection. Cut connections, silent ones, 5xx, 408 and
 * 429 are retried (see RetryPolicy) from the last event handed to the caller, with
 * `Last-Event-ID`; any other 4xx is thrown as an AgentdError.
 *
 * Only an event handed out moves the resume point: one read off the wire but not yet handed
 * out is read again after a reconnect, and one handed out is never handed out again (its id is
 * compared, as a number pair, with the last one's). So a 204 (agentd: "nothing after that id,
 * the run ended") can end the stream only when the caller has the `end`: at the `after` it
 * gave. If the resume point is one this stream handed out, the `end` was never delivered and
 * agentd's `end` lies at or before it (events the server lost, and recovered from, after they
 * were sent): the stream reads the run again from the caller's `after` and delivers that `end`
 * (its id then not above the last one's), rather than end without it.
 */
export class RunEventStream implements AsyncIterable<EventView> {
  private last: { readonly text: string; readonly pair: EventIdPair } | null = null;
  /** The resume point is an id this stream read, no longer the caller's `after`. */
  private advanced = false;
  private endDelivered = false;
  private iterated = false;
  private readonly idleTimeoutMs: number;

  constructor(
    private readonly transport: Transport,
    private readonly runId: string,
    private readonly options: EventsOptions = {},
  ) {
    const after = options.after ?? null;
    if (after !== null) {
      const pair = parseEventId(after);
      if (pair === null) throw new TypeError(`after: "${after}" is not an event id like 1700000000000-0.`);
      this.last = { text: after, pair };
    }
    this.idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  }

  /** The id of the last event handed out (or the `after` given): where a later stream resumes. */
  get lastEventId(): string | null {
    return this.last?.text ?? null;
  }

  /** Whether the run's `end` event was handed out. */
  get ended(): boolean {
    return this.endDelivered;
  }

  [Symbol.asyncIterator](): AsyncIterator<EventView> {
    if (this.iterated) throw new TypeError('A RunEventStream is iterated once; call events() again, with after: lastEventId.');
    this.iterated = true;
    return this.iterate();
  }

  private async *iterate(): AsyncGenerator<EventView, void, undefined> {
    let failures = 0;
    let rereading = false;
    for (;;) {
      const attempt = new AbortController();
      const stop = () => attempt.abort(this.options.signal?.reason);
      this.options.signal?.addEventListener('abort', stop, { once: true });
      let outcome: Outcome;
      try {
        this.options.signal?.throwIfAborted();
        const idle = this.idleWatch(attempt);
        const opened = await this.open(rereading ? (this.options.after ?? null) : this.lastEventId, attempt);
        if (opened.kind === 'body') {
          for await (const frame of sseFrames(opened.body, attempt.signal, idle.touch)) {
            const event = this.accept(frame, rereading);
            if (event === null) continue;
            failures = 0;
            // A caller slow with an event is not a silent connection.
            idle.pause();
            yield event;
            if (event.type === 'end') return;
            idle.touch();
          }
          this.options.signal?.throwIfAborted();
          const cause = attempt.signal.aborted ? (attempt.signal.reason as unknown) : new Error('it closed before the end');
          outcome = { kind: 'failed', error: connectionFailed(`The event stream of run ${this.runId}`, cause) };
        } else outcome = opened;
      } catch (error) {
        outcome = { kind: 'failed', error: this.failure(error, attempt) };
      } finally {
        attempt.abort();
        this.options.signal?.removeEventListener('abort', stop);
      }
      if (outcome.kind === 'past_end') {
        if (!this.advanced || rereading) return;
        rereading = true;
        continue;
      }
      failures += 1;
      await this.transport.beforeRetry(outcome.error, failures, true, this.options.signal);
    }
  }

  /** Connects after `after`: the body to read, or what the answer says instead. Throws a final error. */
  private async open(
    after: string | null,
    attempt: AbortController,
  ): Promise<{ readonly kind: 'body'; readonly body: ReadableStream<Uint8Array> } | Outcome> {
    const response = await this.transport.send({
      method: 'GET',
      path: `/v1/runs/${encodeURIComponent(this.runId)}/events`,
      credential: 'apiKey',
      headers: { accept: 'text/event-stream', ...(after === null ? {} : { 'last-event-id': after }) },
      signal: attempt.signal,
    });
    if (response.status === 204) {
      await response.body?.cancel();
      return { kind: 'past_end' };
    }
    if (!response.ok) return { kind: 'failed', error: await errorFromResponse(response) };
    const type = response.headers.get('content-type') ?? '';
    if (!type.startsWith('text/event-stream') || response.body === null) {
      await response.body?.cancel();
      throw new AgentdError(
        'invalid_response',
        `The events of run ${this.runId} came as "${type}", not text/event-stream.`,
        response.status,
      );
    }
    return { kind: 'body', body: response.body };
  }

  /** The event a frame carries, to hand out; null for one handed out already (or of a type this client does not know). */
  private accept(frame: SseFrame, rereading: boolean): EventView | null {
    const pair = frame.id === null ? null : parseEventId(frame.id);
    if (frame.id === null || pair === null) {
      throw new AgentdError('invalid_response', `An event of run ${this.runId} came without a valid id (${String(frame.id)}).`);
    }
    const isEnd = frame.event === 'end';
    if (this.last !== null && compareEventIds(pair, this.last.pair) <= 0 && !(rereading && isEnd)) return null;
    let data: unknown;
    try {
      data = JSON.parse(frame.data);
    } catch {
      throw new AgentdError('invalid_response', `Event ${frame.id} of run ${this.runId} does not carry JSON data.`);
    }
    this.last = { text: frame.id, pair };
    this.advanced = true;
    // Agents define their own types; a name no agent may use is passed over, its id kept as the resume point.
    if (!isEventType(frame.event)) return null;
    if (isEnd) this.endDelivered = true;
    return { id: frame.id, type: frame.event, data } as EventView;
  }

  /**
   * Aborts the attempt when it has brought nothing for idleTimeoutMs, from the request on (a
   * connection that went silent, half-open, never errors by itself). Each chunk read restarts the
   * clock (`touch`); it stands still while the caller holds an event (`pause`).
   */
  private idleWatch(attempt: AbortController): IdleWatch {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const pause = () => clearTimeout(timer);
    const touch = () => {
      clearTimeout(timer);
      if (this.idleTimeoutMs <= 0 || attempt.signal.aborted) return;
      timer = setTimeout(() => attempt.abort(new Error(`no data for ${this.idleTimeoutMs} ms`)), this.idleTimeoutMs);
    };
    attempt.signal.addEventListener('abort', pause, { once: true });
    touch();
    return { touch, pause };
  }

  /** A thrown error as the failure of this connection to retry; rethrows the caller's abort and final errors. */
  private failure(error: unknown, attempt: AbortController): AgentdError {
    if (this.options.signal?.aborted) throw this.options.signal.reason;
    if (error instanceof AgentdError) throw error;
    const cause = attempt.signal.aborted && attempt.signal.reason instanceof Error ? attempt.signal.reason : error;
    return connectionFailed(`The event stream of run ${this.runId}`, cause);
  }
}
