/**
 * A small periodic task (sweeper, flusher, heartbeat): runs `tick` every `intervalMs`, never
 * two ticks at once, and stops on `stop()`, which waits for a running tick. A tick that
 * throws is reported to `onError` and the loop goes on.
 */
export class BackgroundLoop {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped: Promise<void> | undefined;

  constructor(
    private readonly tick: () => Promise<void> | void,
    private readonly intervalMs: number,
    private readonly onError: (error: unknown) => void,
  ) {}

  start(): void {
    if (this.timer !== undefined || this.stopped !== undefined) return;
    this.timer = setInterval(() => {
      if (this.running !== undefined) return; // the previous tick is still going
      this.running = this.runOnce().finally(() => {
        this.running = undefined;
      });
    }, this.intervalMs);
    this.timer.unref();
  }

  /** Runs one tick now (tests drive loops with this). */
  async runOnce(): Promise<void> {
    try {
      await this.tick();
    } catch (error) {
      this.onError(error);
    }
  }

  /** Idempotent: returns the same promise when called twice. */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      clearInterval(this.timer);
      await this.running;
    })();
    return this.stopped;
  }
}
