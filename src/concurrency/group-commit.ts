import { AsyncResource } from 'node:async_hooks';

/**
 * Group commit: writes that arrive together go to the database as one statement. A batch
 * starts once the callback that submitted its first request is done (a microtask), so the
 * requests of one callback share it; while a batch is being written, new requests wait and
 * go together in the next one. At most `maxInFlight` batches are written at once.
 */
export interface GroupCommitOptions<Req, Res> {
  /** Writes a batch in one statement; one result per request, in the batch's order. */
  readonly commitBatch: (batch: readonly Req[]) => Promise<readonly Res[]>;
  /** Writes one request on its own: the path a batch falls back to when the database refuses it. */
  readonly commitOne: (request: Req) => Promise<Res>;
  /**
   * True for an error that says nothing about the batch's content (the database is
   * unreachable): every request of the batch gets it, and none is retried alone.
   */
  readonly isUnavailable: (error: unknown) => boolean;
  /** Most requests per batch. */
  readonly maxBatch: number;
  /** Most bytes per batch, as `bytesOf` counts them (a batch holds at least one request). Default: unbounded. */
  readonly maxBatchBytes?: number;
  readonly bytesOf?: (request: Req) => number;
  /** Batches written at once; default 1. */
  readonly maxInFlight?: number;
  /** Whether `b` may share a batch with `a` (same parameters for the whole statement); default always. */
  readonly sameBatch?: (a: Req, b: Req) => boolean;
  /** The error for a request submitted after close(). */
  readonly closedError: () => unknown;
  /** Told when the database refused a batch and its requests are retried one at a time. */
  readonly onBatchRefused: (error: unknown, batchSize: number) => void;
}

interface Entry<Req, Res> {
  readonly request: Req;
  readonly resolve: (result: Res) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Batches concurrent writes. Each request gets its own result; a batch the database refuses
 * for its content is retried one request at a time, in order, so only the request at fault
 * fails; an unreachable database fails every request of the batch.
 */
export class GroupCommit<Req, Res> {
  private pending: Array<Entry<Req, Res>> = [];
  private inFlight = 0;
  private scheduled = false;
  private closing: Promise<void> | undefined;
  private whenIdle: (() => void) | undefined;
  private readonly maxInFlight: number;
  /**
   * `dispatch` in the async context this GroupCommit was made in: a batch is written for many
   * callers, so its work (and what it logs) must not carry the context of the one that came first.
   */
  private readonly dispatchDetached = AsyncResource.bind(() => this.dispatch());

  constructor(private readonly options: GroupCommitOptions<Req, Res>) {
    this.maxInFlight = options.maxInFlight ?? 1;
    for (const [name, value] of [
      ['maxBatch', options.maxBatch],
      ['maxInFlight', this.maxInFlight],
    ] as const) {
      if (!Number.isInteger(value) || value < 1) throw new RangeError(`GroupCommit ${name} must be a positive integer, got ${value}`);
    }
  }

  /** Resolves with the request's result once its batch is written. */
  submit(request: Req): Promise<Res> {
    if (this.closing !== undefined) return Promise.reject(this.options.closedError());
    return new Promise<Res>((resolve, reject) => {
      this.pending.push({ request, resolve, reject });
      if (!this.scheduled && this.inFlight < this.maxInFlight) {
        // Room for a batch: it goes once the current callback's synchronous work is done, so
        // what that callback submits joins it; what arrives while it is written joins the next.
        this.scheduled = true;
        queueMicrotask(() => {
          this.scheduled = false;
          this.dispatchDetached();
        });
      }
    });
  }

  /** Refuses new requests and resolves once every submitted one is written. Idempotent. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.whenIdle = resolve;
      this.resolveIfIdle();
    });
    return this.closing;
  }

  private dispatch(): void {
    while (this.inFlight < this.maxInFlight && this.pending.length > 0) {
      this.inFlight += 1;
      void this.write(this.takeBatch()); // write() settles every entry itself and never rejects
    }
  }

  /** The oldest pending request and the ones after it that may join it, within the bounds. */
  private takeBatch(): Array<Entry<Req, Res>> {
    const { maxBatch, maxBatchBytes = Infinity, bytesOf, sameBatch } = this.options;
    const head = this.pending[0] as Entry<Req, Res>;
    const batch: Array<Entry<Req, Res>> = [];
    const rest: Array<Entry<Req, Res>> = [];
    let bytes = 0;
    let full = false;
    for (const entry of this.pending) {
      if (!full && (sameBatch === undefined || sameBatch(head.request, entry.request))) {
        const size = bytesOf?.(entry.request) ?? 0;
        full = batch.length >= maxBatch || (batch.length > 0 && bytes + size > maxBatchBytes);
        if (!full) {
          batch.push(entry);
          bytes += size;
          continue;
        }
      }
      rest.push(entry);
    }
    this.pending = rest;
    return batch;
  }

  private async write(batch: Array<Entry<Req, Res>>): Promise<void> {
    try {
      const results = await this.commit(batch.map((entry) => entry.request));
      batch.forEach((entry, i) => {
        const result = results[i] as PromiseSettledResult<Res>;
        if (result.status === 'fulfilled') entry.resolve(result.value);
        else entry.reject(result.reason);
      });
    } catch (error) {
      for (const entry of batch) entry.reject(error);
    } finally {
      this.inFlight -= 1;
      // Everything that arrived while this batch was written goes now, without waiting a turn.
      this.dispatch();
      this.resolveIfIdle();
    }
  }

  private async commit(requests: readonly Req[]): Promise<Array<PromiseSettledResult<Res>>> {
    const { commitBatch, isUnavailable, onBatchRefused } = this.options;
    try {
      const results = await commitBatch(requests);
      if (results.length !== requests.length) throw new Error(`a batch of ${requests.length} requests returned ${results.length} results`);
      return results.map((value) => ({ status: 'fulfilled', value }));
    } catch (error) {
      if (isUnavailable(error)) throw error;
      onBatchRefused(error, requests.length);
    }
    // The database refused the batch for something in it: each request alone, in order, so
    // only the one at fault fails.
    return this.commitEach(requests);
  }

  /** Each request alone, in order; an outage on the way fails the rest at once. */
  private async commitEach(requests: readonly Req[]): Promise<Array<PromiseSettledResult<Res>>> {
    const { commitOne, isUnavailable } = this.options;
    const settled: Array<PromiseSettledResult<Res>> = [];
    for (const request of requests) {
      try {
        settled.push({ status: 'fulfilled', value: await commitOne(request) });
      } catch (reason) {
        if (isUnavailable(reason)) {
          while (settled.length < requests.length) settled.push({ status: 'rejected', reason });
          break;
        }
        settled.push({ status: 'rejected', reason });
      }
    }
    return settled;
  }

  private resolveIfIdle(): void {
    if (this.whenIdle !== undefined && this.pending.length === 0 && this.inFlight === 0 && !this.scheduled) this.whenIdle();
  }
}
