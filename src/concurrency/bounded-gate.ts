/**
 * A FIFO counting semaphore with a bounded wait: at most `max` holders at once; a caller that waits
 * longer than `acquireTimeoutMs` for its turn is rejected with the error from `onTimeout()`.
 */
export type Release = () => void;

interface Waiter {
  grant: (release: Release) => void;
  reject: (err: unknown) => void;
  timer: NodeJS.Timeout | undefined;
}

export class BoundedGate {
  #inUse = 0;
  #closedError: (() => unknown) | undefined;
  readonly #waiters: Waiter[] = [];

  constructor(
    readonly max: number,
    private readonly acquireTimeoutMs: number,
    private readonly onTimeout: () => unknown,
  ) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`BoundedGate max must be a positive integer, got ${max}`);
  }

  get inUse(): number {
    return this.#inUse;
  }

  get waiting(): number {
    return this.#waiters.length;
  }

  acquire(): Promise<Release> {
    if (this.#closedError) return Promise.reject(this.#closedError());
    if (this.#inUse < this.max && this.#waiters.length === 0) {
      this.#inUse++;
      return Promise.resolve(this.#makeRelease());
    }
    return new Promise<Release>((resolve, reject) => {
      const waiter: Waiter = { grant: resolve, reject, timer: undefined };
      if (Number.isFinite(this.acquireTimeoutMs)) {
        waiter.timer = setTimeout(
          () => {
            const i = this.#waiters.indexOf(waiter);
            if (i !== -1) this.#waiters.splice(i, 1);
            reject(this.onTimeout());
          },
          Math.max(0, this.acquireTimeoutMs),
        );
      }
      this.#waiters.push(waiter);
    });
  }

  /** Runs `fn` while holding a permit. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    const release = await this.acquire();
    try {
      return await fn();
    } finally {
      release();
    }
  }

  /** Rejects every queued waiter and all future acquires with `makeError()`; current holders finish normally. */
  close(makeError: () => unknown): void {
    this.#closedError = makeError;
    for (const w of this.#waiters.splice(0)) {
      if (w.timer) clearTimeout(w.timer);
      w.reject(makeError());
    }
  }

  #makeRelease(): Release {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiters.shift();
      if (next) {
        // Hand the permit straight to the next waiter: #inUse stays the same.
        if (next.timer) clearTimeout(next.timer);
        next.grant(this.#makeRelease());
      } else {
        this.#inUse--;
      }
    };
  }
}
