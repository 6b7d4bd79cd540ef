import type { ServerResponse } from 'node:http';
import type { EventId, Logger } from '../../domain/index.js';
import type { RunEndRecovery } from '../../runtime/run-end-recovery.js';
import type { EventLog } from '../../streaming/event-log.js';
import type { Followers } from '../../streaming/followers.js';
import { RunFollower } from '../../streaming/run-follower.js';
import { SseWriter } from './sse-writer.js';

export interface RunStreamDeps {
  readonly eventLog: EventLog;
  readonly logger: Logger;
  readonly followers: Followers;
  readonly ends: RunEndRecovery;
  /** A `: ping` goes out after this long without an event (SSE_HEARTBEAT_MS). */
  readonly heartbeatMs: number;
  /** A listener this many bytes behind is cut off (SSE_MAX_BUFFER_BYTES). */
  readonly maxBufferBytes: number;
}

/**
 * Decides when an idle listener asks for a run that ended without an `end` (its instance
 * died): on idle ticks 2, 4, 8, 16… so 10,000 idle listeners do not each query Postgres on
 * every heartbeat. A failed check is logged by RunEndRecovery and retried on a later tick.
 */
class MissingEndCheck {
  private idleTicks = 0;
  private nextCheck = 2;

  constructor(private readonly check: () => Promise<boolean>) {}

  /** True when the run's `end` is in the archive now (the follower should read again). */
  async due(): Promise<boolean> {
    this.idleTicks += 1;
    if (this.idleTicks < this.nextCheck) return false;
    this.nextCheck *= 2;
    return this.check();
  }
}

/** One SSE response that streams a run's events to its `end`, then closes. */
export class RunStream {
  private readonly gone = new AbortController();
  private readonly writer: SseWriter;
  private readonly endCheck: MissingEndCheck;
  private clientLeft = false;
  private cutOff = false;

  constructor(
    private readonly deps: RunStreamDeps,
    private readonly res: ServerResponse,
    private readonly run: { readonly id: string; readonly accountId: string },
  ) {
    this.writer = new SseWriter(res);
    this.endCheck = new MissingEndCheck(() => deps.ends.endIfMissing(run));
  }

  /**
   * Streams the run's events strictly after `after` (null: from the first) to its `end`, then
   * closes; call once. `clientLeft` tells whether the client went away before the end (rather
   * than the server ending or cutting it off).
   */
  async serve(after: EventId | null, headers: Record<string, string> = {}): Promise<{ clientLeft: boolean }> {
    this.res.on('close', this.onClose);
    if (this.res.destroyed) this.onClose(); // the client left while the run was looked up
    const close = this.deps.followers.open();
    try {
      this.writer.open(headers);
      await new RunFollower({
        eventLog: this.deps.eventLog,
        runId: this.run.id,
        after,
        sink: this.writer,
        signal: this.gone.signal,
        idleMs: this.deps.heartbeatMs,
        maxQueuedBytes: this.deps.maxBufferBytes,
        onOverflow: this.onOverflow,
        onIdle: this.onIdle,
      }).follow();
    } catch (error) {
      this.deps.logger.warn('event stream stopped', { runId: this.run.id, error });
    } finally {
      this.res.off('close', this.onClose);
      close();
      this.writer.end();
    }
    return { clientLeft: this.clientLeft };
  }

  private readonly onClose = (): void => {
    this.clientLeft = !this.res.writableFinished && !this.cutOff;
    this.gone.abort();
  };

  private readonly onOverflow = (): void => {
    this.cutOff = true;
    this.writer.cutOff();
  };

  private readonly onIdle = async (): Promise<boolean> => {
    if (!this.writer.heartbeat()) this.gone.abort();
    return this.endCheck.due();
  };
}
