import { AsyncResource } from 'node:async_hooks';
import type { EventArchiveRepository } from '../db/event-archive-repository.js';
import { type ArchivedEvent, chunkEvents, type EventChunk, splitChunk } from '../db/event-chunk.js';
import { BackgroundLoop } from '../concurrency/background-loop.js';
import { DependencyUnavailableError, eventBytes, type RunEvent } from '../domain/index.js';

/**
 * A batch stops growing past this many characters of event JSON text (one INSERT, its chunks'
 * text in one parameter): characters stand for bytes, near enough for a bound and free to count.
 */
const MAX_BATCH_CHARS = 8 * 1024 * 1024;

/**
 * Events per INSERT by default: enough for every run's events of a flush at 1,000 runs × 20
 * events/s, so that each run's events of a flush become one row (a chunk), whatever order the
 * runs emitted them in. A batch of the oldest 500 held one event of each of 500 runs.
 */
const DEFAULT_MAX_BATCH = 20_000;

export interface EventArchiverOptions {
  readonly repository: EventArchiveRepository;
  /** How often pending events are written (ARCHIVE_FLUSH_MS). */
  readonly intervalMs: number;
  readonly onError: (error: unknown) => void;
  /** Most events per INSERT. */
  readonly maxBatch?: number;
  /** An event the database refuses for itself (not for being unreachable): it is logged and skipped. */
  readonly onRejected?: (runId: string, error: unknown) => void;
}

/**
 * Writes every accepted event to Postgres in batches: one INSERT per instance per interval, and
 * at once when a run ends, each run's events of the batch in chunks (`chunkEvents`). While the
 * database is unreachable a batch keeps its events, in order, for the next attempt. A batch the
 * database refuses for its content is split, chunks first and then the chunk's events, until
 * the one refused event is found, so it cannot hold up everything behind it.
 */
export class EventArchiver {
  private pending: ArchivedEvent[] = [];
  /** Bytes (`eventBytes`) of each run's pending events: the run's share of the backlog. */
  private readonly pendingBytesByRun = new Map<string, number>();
  private pendingBytesTotal = 0;
  private added = 0;
  private archived = 0;
  /** Events the archive took (`archived` also counts those it refused, which were skipped). */
  private inserted = 0;
  private writing: Promise<void> | undefined;
  private readonly loop: BackgroundLoop;
  private readonly maxBatch: number;
  private closed: Promise<void> | undefined;
  /**
   * `writeBatch` in the async context this archiver was made in: a batch holds many runs'
   * events, so its work (and what it logs) must not carry the context of the run that flushed.
   */
  private readonly writeBatchDetached = AsyncResource.bind(() => this.writeBatch());

  constructor(private readonly options: EventArchiverOptions) {
    this.maxBatch = options.maxBatch ?? DEFAULT_MAX_BATCH;
    this.loop = new BackgroundLoop(() => this.flush(), options.intervalMs, options.onError);
  }

  /** Starts writing every `intervalMs`. Idempotent. */
  start(): void {
    this.loop.start();
  }

  /** Queues the event for the next write; returns the bytes of the run's events not yet archived. */
  add(runId: string, event: RunEvent): number {
    this.pending.push({ runId, event });
    this.added += 1;
    const bytes = eventBytes(event);
    this.pendingBytesTotal += bytes;
    const runBytes = (this.pendingBytesByRun.get(runId) ?? 0) + bytes;
    this.pendingBytesByRun.set(runId, runBytes);
    return runBytes;
  }

  /** Events accepted and not yet archived. */
  get pendingCount(): number {
    return this.pending.length;
  }

  /** Events written to the archive since start-up. */
  get insertedCount(): number {
    return this.inserted;
  }

  /** Bytes (`eventBytes`) of the events accepted and not yet archived. */
  get pendingBytes(): number {
    return this.pendingBytesTotal;
  }

  /** Resolves once every event added before the call is archived; rejects if a write fails. */
  async flush(): Promise<void> {
    const target = this.added;
    while (this.archived < target) {
      if (this.writing === undefined) {
        this.writing = this.writeBatchDetached().finally(() => {
          this.writing = undefined;
        });
      }
      await this.writing;
    }
  }

  private async writeBatch(): Promise<void> {
    const batch = this.takeBatch();
    try {
      await this.insertOrSplit(chunkEvents(batch));
      this.archived += batch.length;
    } catch (error) {
      this.pending = batch.concat(this.pending); // not unshift(...batch): tens of thousands of arguments
      throw error;
    }
    this.settle(batch);
  }

  /** Takes the archived (or skipped) batch's events off their runs' backlog. */
  private settle(batch: readonly ArchivedEvent[]): void {
    let runId: string | undefined;
    let bytes = 0;
    // A batch holds runs' events in streaks: one map update per streak, not per event.
    for (const entry of batch) {
      if (entry.runId !== runId) {
        if (runId !== undefined) this.release(runId, bytes);
        runId = entry.runId;
        bytes = 0;
      }
      bytes += eventBytes(entry.event);
    }
    if (runId !== undefined) this.release(runId, bytes);
  }

  private release(runId: string, bytes: number): void {
    this.pendingBytesTotal -= bytes;
    const left = (this.pendingBytesByRun.get(runId) ?? 0) - bytes;
    if (left > 0) this.pendingBytesByRun.set(runId, left);
    else this.pendingBytesByRun.delete(runId);
  }

  /** The oldest pending events, bounded by count and size (at least one). */
  private takeBatch(): ArchivedEvent[] {
    let count = 0;
    let chars = 0;
    while (count < this.pending.length && count < this.maxBatch) {
      chars += (this.pending[count] as ArchivedEvent).event.json.length;
      if (count > 0 && chars > MAX_BATCH_CHARS) break;
      count += 1;
    }
    return this.pending.splice(0, count);
  }

  /** Inserts chunks; on a content error, halves them, then the chunk's events, until the refused event is isolated and skipped. */
  private async insertOrSplit(chunks: readonly EventChunk[]): Promise<void> {
    try {
      await this.options.repository.insertChunks(chunks);
      for (const chunk of chunks) this.inserted += chunk.events.length;
    } catch (error) {
      if (error instanceof DependencyUnavailableError) throw error;
      const [only] = chunks;
      if (chunks.length > 1) {
        const middle = Math.ceil(chunks.length / 2);
        await this.insertOrSplit(chunks.slice(0, middle));
        await this.insertOrSplit(chunks.slice(middle));
      } else if (only !== undefined && only.events.length > 1) {
        const [head, rest] = splitChunk(only);
        await this.insertOrSplit([head]);
        await this.insertOrSplit([rest]);
      } else if (only !== undefined) {
        this.options.onRejected?.(only.runId, error);
      }
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
