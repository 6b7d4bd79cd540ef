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

/**
 * One SSE response that streams a run's events to its `end`, then closes. It counts as one of
 * its account's followers from `RunStream.open` (which refuses one past the account's limit,
 * before anything is written) until it closes.
 */
export class RunStream {
  private readonly gone = new AbortController();
  private readonly writer: SseWriter;
  private readonly endCheck: MissingEndCheck;
  private clientLeft = false;
  private cutOff = false;
  /** The resume point the client asked for (null: from the first event). */
  private resumedAfter: EventId | null = null;

  private constructor(
    private readonly deps: RunStreamDeps,
    private readonly res: ServerResponse,
    private readonly run: { readonly id: string; readonly accountId: string },
    /** Stops counting this stream among its account's followers (idempotent). */
    private readonly release: () => void,
  ) {
    this.writer = new SseWriter(res, deps.followers);
    this.endCheck = new MissingEndCheck(() => this.checkEnd());
  }

  /**
   * Counts a stream for the account (throws ListenerLimitError past SSE_MAX_LISTENERS_PER_ACCOUNT,
   * before any byte is written); `bind` gives it its run once known, and `release` gives the
   * count back if the stream is never served (`serve` does it otherwise).
   */
  static open(
    deps: RunStreamDeps,
    res: ServerResponse,
    accountId: string,
  ): { bind(run: { readonly id: string; readonly accountId: string }): RunStream; release(): void } {
    const release = deps.followers.open(accountId);
    return { bind: (run) => new RunStream(deps, res, run, release), release };
  }

  /**
   * Streams the run's events strictly after `after` (null: from the first) to its `end`, then
   * closes; call once. `clientLeft` tells whether the client went away before the end (rather
   * than the server ending or cutting it off).
   */
  async serve(after: EventId | null, headers: Record<string, string> = {}): Promise<{ clientLeft: boolean }> {
    this.resumedAfter = after;
    this.res.on('close', this.onClose);
    if (this.res.destroyed) this.onClose(); // the client left while the run was looked up
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
      this.deps.logger.warn('event stream stopped', { run_id: this.run.id, error });
    } finally {
      this.res.off('close', this.onClose);
      this.release();
      this.writer.end();
    }
    return { clientLeft: this.clientLeft };
  }

  /**
   * On the idle ticks MissingEndCheck chooses: a client that resumed at or past the run's `end`
   * (the run ended as it connected, so its `end` never came live) is done; else the missing
   * `end` of a run whose instance died is written. True when the follower should read again.
   */
  private async checkEnd(): Promise<boolean> {
    if (this.resumedAfter !== null) {
      try {
        if (await this.deps.eventLog.isPastEnd(this.run.id, this.resumedAfter, 0)) {
          this.gone.abort();
          return false;
        }
      } catch (error) {
        this.deps.logger.warn('could not look up the end of a run; a later check retries', { run_id: this.run.id, error });
      }
    }
    return this.deps.ends.endIfMissing(this.run);
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
