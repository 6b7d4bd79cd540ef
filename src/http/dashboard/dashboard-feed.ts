import type { RunRepository } from '../../db/run-repository.js';
import { capacityShape, dashboardView, SHOWN } from './dashboard-view.js';

/** A snapshot is computed at most this often, in ms, however many dashboards ask. */
export const SNAPSHOT_TTL_MS = 1_000;
/** The page counts final statuses reached within this many seconds. */
export const FINISHED_WITHIN_S = 300;

export interface DashboardFeedDeps {
  /** The capacity view (`GET /v1/admin/capacity`). */
  readonly capacity: { snapshot(): Promise<Record<string, unknown>> };
  readonly runs: Pick<RunRepository, 'newest' | 'countByStatus'>;
  /** How long a snapshot is served before the next is computed, in ms; default SNAPSHOT_TTL_MS. */
  readonly ttlMs?: number;
  /** The clock, in ms; default `Date.now`. */
  readonly now?: () => number;
}

/**
 * The one aggregate every open dashboard reads: the capacity view and the runs, computed at
 * most once per `ttlMs` and serialised once, whatever the number of viewers. Viewers asking
 * while one is computed share it; a failed computation is not kept, so the next ask retries.
 */
export class DashboardFeed {
  private cached: { body: string; atMs: number } | undefined;
  private computing: Promise<string> | undefined;
  private computed = 0;

  constructor(private readonly deps: DashboardFeedDeps) {}

  /** How many snapshots were computed so far (for tests and the curious). */
  get computations(): number {
    return this.computed;
  }

  /** The current snapshot as JSON text, no older than `ttlMs`. */
  body(): Promise<string> {
    const nowMs = (this.deps.now ?? Date.now)();
    if (this.cached !== undefined && nowMs - this.cached.atMs < (this.deps.ttlMs ?? SNAPSHOT_TTL_MS)) {
      return Promise.resolve(this.cached.body);
    }
    this.computing ??= this.compute(nowMs).finally(() => {
      this.computing = undefined;
    });
    return this.computing;
  }

  private async compute(startedAtMs: number): Promise<string> {
    this.computed += 1;
    const [capacity, newest, byStatus] = await Promise.all([
      this.deps.capacity.snapshot(),
      this.deps.runs.newest(SHOWN.runs),
      this.deps.runs.countByStatus(FINISHED_WITHIN_S * 1000),
    ]);
    const view = dashboardView(
      capacityShape.parse(capacity),
      { newest, byStatus, finishedWithinS: FINISHED_WITHIN_S },
      new Date(startedAtMs),
    );
    const body = JSON.stringify(view);
    this.cached = { body, atMs: startedAtMs };
    return body;
  }
}
