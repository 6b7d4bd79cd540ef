import { BackgroundLoop } from '../concurrency/background-loop.js';
import type { Beat, InstanceRepository } from '../db/instance-repository.js';
import { ENDINGS, type Logger } from '../domain/index.js';
import type { RunEndRecovery } from './run-end-recovery.js';

/** Runs ended per sweep statement; a sweep goes on until it finds fewer. */
const SWEEP_BATCH = 200;

/** What the heartbeat needs of the runs this instance holds. */
export interface LocalRuns {
  /** Ids of the runs in progress here. */
  localRunIds(): string[];
  /** Told of local runs the database says have ended elsewhere: their agents must stop. */
  endedElsewhere(runIds: readonly string[]): void;
}

/** Counts the heartbeat reports (metrics). */
export interface HeartbeatObserver {
  beat(beat: Beat): void;
  swept(runs: number): void;
}

export interface InstanceHeartbeatOptions {
  readonly instanceId: string;
  /** INSTANCE_HEARTBEAT_MS. */
  readonly intervalMs: number;
  readonly instances: Pick<InstanceRepository, 'beat' | 'sweep' | 'remove'>;
  readonly runs: LocalRuns;
  readonly ends: Pick<RunEndRecovery, 'writeEnds'>;
  readonly observer: HeartbeatObserver;
  readonly logger: Logger;
}

/**
 * This instance's liveness and its share of the fleet's housekeeping. Every interval it beats
 * (one statement), stops local runs that another instance ended (so a long database outage
 * cannot leave a run with two owners), then sweeps: runs of instances silent for 3 of their
 * beats end `interrupted` (instance_lost) with their `end` written to the streams and the
 * archive. Any live instance sweeps; a sweep needs this instance's own beat to be current.
 */
export class InstanceHeartbeat {
  private readonly loop: BackgroundLoop;
  private lastBeat: Beat | undefined;
  private closing: Promise<void> | undefined;

  constructor(private readonly options: InstanceHeartbeatOptions) {
    this.loop = new BackgroundLoop(
      () => this.tick(),
      options.intervalMs,
      (error) => options.logger.warn('instance heartbeat failed; the next beat retries', { error }),
    );
  }

  /** What the last successful beat learned, if any. */
  get last(): Beat | undefined {
    return this.lastBeat;
  }

  /** Registers this instance (the first beat, awaited: a database error stops start-up) and starts beating. */
  async start(): Promise<void> {
    await this.tick();
    this.loop.start();
  }

  /** One beat, then a sweep. Tests drive it directly. */
  async tick(): Promise<void> {
    const { instances, instanceId, intervalMs, runs, logger } = this.options;
    const beat = await instances.beat(instanceId, intervalMs, runs.localRunIds());
    this.lastBeat = beat;
    this.options.observer.beat(beat);
    if (beat.endedElsewhere.length > 0) {
      logger.warn('runs of this instance were ended by another instance; stopping their agents', { run_ids: beat.endedElsewhere });
      runs.endedElsewhere(beat.endedElsewhere);
    }
    if (beat.dead > 0) await this.sweep();
  }

  /** Ends the runs of dead instances, a batch at a time, each batch's `end` events written before the next. */
  private async sweep(): Promise<void> {
    for (;;) {
      const swept = await this.options.instances.sweep(this.options.instanceId, ENDINGS.instanceLost.error, SWEEP_BATCH);
      if (swept.length === 0) return;
      this.options.observer.swept(swept.length);
      this.options.logger.warn('ended runs of dead instances as interrupted', {
        count: swept.length,
        instances: [...new Set(swept.map((run) => run.instanceId))],
      });
      await this.options.ends.writeEnds(swept);
      if (swept.length < SWEEP_BATCH) return;
    }
  }

  /**
   * Stops beating (after the runs have drained) and forgets this instance unless it left runs
   * to sweep. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.loop.stop();
      try {
        await this.options.instances.remove(this.options.instanceId);
      } catch (error) {
        this.options.logger.warn('could not remove this instance from the instances table; it ages out', { error });
      }
    })();
    return this.closing;
  }
}
