import { withDeadline } from '../concurrency/deadline.js';

/** A probe that has not answered in this time has failed (ms). */
const PROBE_TIMEOUT_MS = 2_000;
/**
 * A dependency counts against readiness only once its probes have failed for this long (ms):
 * a shared database's or Redis's hiccup must not take every instance out of the load balancer
 * at once, and a real outage still shows within a few seconds.
 */
export const READY_FAILURE_GRACE_MS = 3_000;

/** One dependency's probe, with when it started failing. */
interface Dependency {
  readonly name: string;
  readonly check: () => Promise<unknown>;
  failingSinceMs: number | null;
}

export interface ReadinessReport {
  readonly ready: boolean;
  /** Dependencies failing for longer than the grace, and draining: why the instance is not ready. */
  readonly failures: string[];
  /** Dependencies failing within the grace: shown, not yet held against readiness. */
  readonly degraded: string[];
}

/**
 * What `/readyz` answers: not ready while draining, or when a dependency's probes have failed
 * for longer than READY_FAILURE_GRACE_MS; a shorter blip is reported as `degraded`.
 */
export class Readiness {
  private readonly dependencies: Dependency[];

  constructor(
    checks: Readonly<Record<string, () => Promise<unknown>>>,
    private readonly isDraining: () => boolean,
    private readonly now: () => number = Date.now,
  ) {
    this.dependencies = Object.entries(checks).map(([name, check]) => ({ name, check, failingSinceMs: null }));
  }

  /** Probes every dependency (at once, each within 2 s) and reports. */
  async report(): Promise<ReadinessReport> {
    const results = await Promise.all(this.dependencies.map((dependency) => this.probe(dependency)));
    const failures: string[] = [];
    const degraded: string[] = [];
    const nowMs = this.now();
    for (const [i, problem] of results.entries()) {
      const dependency = this.dependencies[i] as Dependency;
      if (problem === null) continue;
      const failingMs = nowMs - (dependency.failingSinceMs ?? nowMs);
      (failingMs >= READY_FAILURE_GRACE_MS ? failures : degraded).push(`${problem} (failing for ${failingMs} ms)`);
    }
    if (this.isDraining()) failures.push('draining: the instance is shutting down');
    return { ready: failures.length === 0, failures, degraded };
  }

  private async probe(dependency: Dependency): Promise<string | null> {
    try {
      await withDeadline(dependency.check(), PROBE_TIMEOUT_MS, dependency.name);
      dependency.failingSinceMs = null;
      return null;
    } catch (error) {
      dependency.failingSinceMs ??= this.now();
      return `${dependency.name}: ${error instanceof Error ? error.message : String(error)}`;
    }
  }
}
