/**
 * A counting semaphore whose permits are named by their holder, with a bounded wait queue
 * that is served round-robin across groups (accounts), so one group with many waiters
 * cannot starve another. Release is idempotent; nothing here ever "repairs" a count.
 */

/** A held permit. `release()` may be called any number of times; only the first counts. */
export interface Permit {
  readonly holder: string;
  release(): void;
}

export class QueueFullError extends Error {
  constructor() {
    super('wait queue is full');
    this.name = 'QueueFullError';
  }
}

export class QueueTimeoutError extends Error {
  constructor(readonly waitedMs: number) {
    super(`waited ${waitedMs} ms for a permit`);
    this.name = 'QueueTimeoutError';
  }
}

export class WaitCancelledError extends Error {
  constructor() {
    super('wait cancelled');
    this.name = 'WaitCancelledError';
  }
}

/** A place in the wait queue. `granted` settles exactly once. */
export interface Waiter {
  readonly holder: string;
  readonly granted: Promise<Permit>;
  /** Leaves the queue (the promise rejects with WaitCancelledError); false if already granted or gone. */
  cancel(): boolean;
}

export type Acquisition = { readonly kind: 'acquired'; readonly permit: Permit } | { readonly kind: 'queued'; readonly waiter: Waiter };

interface Pending {
  readonly holder: string;
  readonly group: string;
  readonly resolve: (permit: Permit) => void;
  readonly reject: (error: Error) => void;
  timer: NodeJS.Timeout | undefined;
}

export interface FairSemaphoreOptions {
  readonly capacity: number;
  /** Most waiters at once; 0 means never queue. */
  readonly queueMax: number;
  /** A waiter that gets no permit in this time fails with QueueTimeoutError. */
  readonly queueTimeoutMs: number;
}

export class FairSemaphore {
  readonly capacity: number;
  readonly queueMax: number;
  private readonly queueTimeoutMs: number;
  private readonly held = new Set<string>();
  private readonly queues = new Map<string, Pending[]>();
  /** Groups with waiters, in the order they will next be served. */
  private readonly rotation: string[] = [];
  private waiting = 0;

  constructor(options: FairSemaphoreOptions) {
    if (!Number.isInteger(options.capacity) || options.capacity < 1) throw new RangeError('capacity must be an integer ≥ 1');
    if (!Number.isInteger(options.queueMax) || options.queueMax < 0) throw new RangeError('queueMax must be an integer ≥ 0');
    this.capacity = options.capacity;
    this.queueMax = options.queueMax;
    this.queueTimeoutMs = options.queueTimeoutMs;
  }

  get inUse(): number {
    return this.held.size;
  }

  get queued(): number {
    return this.waiting;
  }

  /** Run ids holding a permit now. */
  holders(): string[] {
    return [...this.held];
  }

  /** Holders waiting, in no particular order. */
  waiters(): string[] {
    return [...this.queues.values()].flat().map((p) => p.holder);
  }

  /**
   * Takes a permit now, or a place in the queue of `group`. Throws QueueFullError when both
   * are full. Holder names must be unique among current holders and waiters.
   */
  acquire(holder: string, group: string): Acquisition {
    if (this.held.has(holder)) throw new Error(`"${holder}" already holds a permit`);
    if (this.held.size < this.capacity && this.waiting === 0) {
      return { kind: 'acquired', permit: this.grant(holder) };
    }
    if (this.waiting >= this.queueMax) throw new QueueFullError();
    return { kind: 'queued', waiter: this.enqueue(holder, group) };
  }

  private grant(holder: string): Permit {
    this.held.add(holder);
    let released = false;
    return {
      holder,
      release: () => {
        if (released) return;
        released = true;
        this.held.delete(holder);
        this.drain();
      },
    };
  }

  private enqueue(holder: string, group: string): Waiter {
    let pending!: Pending;
    const granted = new Promise<Permit>((resolve, reject) => {
      pending = { holder, group, resolve, reject, timer: undefined };
    });
    const startedAt = Date.now();
    pending.timer = setTimeout(() => {
      if (this.remove(pending)) pending.reject(new QueueTimeoutError(Date.now() - startedAt));
    }, this.queueTimeoutMs);
    let queue = this.queues.get(group);
    if (queue === undefined) {
      queue = [];
      this.queues.set(group, queue);
      this.rotation.push(group);
    }
    queue.push(pending);
    this.waiting += 1;
    return {
      holder,
      granted,
      cancel: () => {
        if (!this.remove(pending)) return false;
        pending.reject(new WaitCancelledError());
        return true;
      },
    };
  }

  /** Takes a pending waiter out of its queue; false when it is no longer there. */
  private remove(pending: Pending): boolean {
    const queue = this.queues.get(pending.group);
    const index = queue?.indexOf(pending) ?? -1;
    if (queue === undefined || index < 0) return false;
    queue.splice(index, 1);
    this.waiting -= 1;
    clearTimeout(pending.timer);
    if (queue.length === 0) {
      this.queues.delete(pending.group);
      this.rotation.splice(this.rotation.indexOf(pending.group), 1);
    }
    return true;
  }

  /** Hands free permits to waiters, one group at a time in rotation. */
  private drain(): void {
    while (this.held.size < this.capacity && this.rotation.length > 0) {
      const group = this.rotation[0] as string;
      const queue = this.queues.get(group) as Pending[];
      const next = queue[0] as Pending;
      this.remove(next);
      // Served groups go to the back of the rotation; remove() dropped emptied ones.
      if (this.queues.has(group)) this.rotation.push(this.rotation.shift() as string);
      next.resolve(this.grant(next.holder));
    }
  }
}
