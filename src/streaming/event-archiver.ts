import type { ArchivedEvent, EventArchiveRepository } from '../db/event-archive-repository.js';
import { BackgroundLoop } from '../runtime/background-loop.js';
import type { RunEvent } from './run-event.js';

export interface EventArchiverOptions {
  readonly repository: EventArchiveRepository;
  /** How often pending events are written (ARCHIVE_FLUSH_MS). */
  readonly intervalMs: number;
  readonly onError: (error: unknown) => void;
  /** Most events per INSERT. */
  readonly maxBatch?: number;
}

/**
 * Writes every accepted event to Postgres in batches: one multi-row INSERT per instance per
 * interval, and at once when a run ends. A failed write keeps its events, in order, for the
 * next attempt: no accepted event is dropped.
 */
export class EventArchiver {
  private pending: ArchivedEvent[] = [];
  private added = 0;
  private archived = 0;
  private writing: Promise<void> | undefined;
  private readonly loop: BackgroundLoop;
  private readonly maxBatch: number;
  private closed: Promise<void> | undefined;

  constructor(private readonly options: EventArchiverOptions) {
    this.maxBatch = options.maxBatch ?? 2_000;
    this.loop = new BackgroundLoop(() => this.flush(), options.intervalMs, options.onError);
    this.loop.start();
  }

  add(runId: string, event: RunEvent): void {
    this.pending.push({ runId, event });
    this.added += 1;
  }

  /** Events accepted and not yet archived. */
  get pendingCount(): number {
    return this.pending.length;
  }

  /** Resolves once every event added before the call is archived; rejects if a write fails. */
  async flush(): Promise<void> {
    const target = this.added;
    while (this.archived < target) {
      if (this.writing === undefined) {
        this.writing = this.writeBatch().finally(() => {
          this.writing = undefined;
        });
      }
      await this.writing;
    }
  }

  private async writeBatch(): Promise<void> {
    const batch = this.pending.splice(0, this.maxBatch);
    try {
      await this.options.repository.insert(batch);
      this.archived += batch.length;
    } catch (error) {
      this.pending.unshift(...batch);
      throw error;
    }
  }

  /** Stops the loop and writes what is left (one attempt). Idempotent. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      await this.loop.stop();
      try {
        await this.flush();
      } catch (error) {
        this.options.onError(error);
      }
    })();
    return this.closed;
  }
}
