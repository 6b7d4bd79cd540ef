import { BackgroundLoop } from '../concurrency/background-loop.js';
import type { RetentionPass, RetentionRepository } from '../db/retention-repository.js';
import type { Logger } from '../domain/index.js';

/** How often the cleanup runs (ms). */
const INTERVAL_MS = 60 * 60 * 1000;
/** Batches of runs per pass, so one pass stays short; what is left waits for the next. */
const MAX_BATCHES = 50;

/**
 * Deletes what is older than RUN_RETENTION_DAYS (runs with their events and webhook
 * deliveries) every hour, in small batches (see RetentionRepository); a failed pass is logged
 * and the next one retries.
 */
export class Retention {
  private readonly loop: BackgroundLoop;

  constructor(
    private readonly repository: Pick<RetentionRepository, 'purge'>,
    private readonly days: number,
    private readonly logger: Logger,
  ) {
    this.loop = new BackgroundLoop(
      async () => {
        await this.runOnce();
      },
      INTERVAL_MS,
      (error) => logger.warn('the retention cleanup failed; the next pass retries', { error }),
    );
  }

  start(): void {
    this.loop.start();
  }

  /** One pass now (tests drive it); logs what it deleted. */
  async runOnce(): Promise<RetentionPass> {
    const pass = await this.repository.purge(this.days, MAX_BATCHES);
    if (pass.runs + pass.idempotencyKeys + pass.instances > 0) {
      this.logger.info('retention cleanup', {
        days: this.days,
        runs: pass.runs,
        events: pass.events,
        webhook_deliveries: pass.webhooks,
        idempotency_keys: pass.idempotencyKeys,
        instances: pass.instances,
      });
    }
    return pass;
  }

  close(): Promise<void> {
    return this.loop.stop();
  }
}
