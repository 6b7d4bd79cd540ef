import type { RunError, RunRecord } from '../domain/index.js';
import type { Database } from './database.js';
import { toRun } from './run-repository.js';

/** An instance silent for this many of its own beat intervals is dead. */
export const MISSED_BEATS = 3;

/** `i` (an `instances` row) has beaten within MISSED_BEATS of its intervals, by the database's clock. */
const ALIVE = (i: string) => `${i}.last_beat_at > now() - ${MISSED_BEATS} * ${i}.beat_interval_ms * interval '1 millisecond'`;

/** What one beat learned. */
export interface Beat {
  /** Runs this instance holds that the database says have ended (swept or cancelled by another instance). */
  readonly endedElsewhere: string[];
  /** Instances alive (this one included) and dead with leases still held, by the database's clock. */
  readonly alive: number;
  readonly dead: number;
  /** Leases held across every instance. */
  readonly leases: number;
}

/** One instance as the capacity view shows it. */
export interface InstanceView {
  readonly id: string;
  readonly alive: boolean;
  /** Null for an instance that never beat (runs recorded before heartbeats existed). */
  readonly startedAt: Date | null;
  readonly lastBeatAt: Date | null;
  readonly leases: number;
}

/** Most instances the capacity view lists (alive first). */
const LIST_MAX = 200;

/** The `instances` table: liveness by heartbeat, and the sweep of dead instances' runs. */
export class InstanceRepository {
  constructor(private readonly db: Database) {}

  /**
   * Renews this instance's liveness (registering it on the first beat) in one statement, which
   * also reports which of `localRunIds` have ended in the database and the fleet's counts.
   */
  async beat(instanceId: string, intervalMs: number, localRunIds: readonly string[]): Promise<Beat> {
    const rows = await this.db.query<{ ended: string[] | null; alive: string; dead: string; leases: string }>(
      `WITH beat AS (
         INSERT INTO instances (id, beat_interval_ms) VALUES ($1, $2)
         ON CONFLICT (id) DO UPDATE SET last_beat_at = now(), beat_interval_ms = EXCLUDED.beat_interval_ms
         RETURNING id
       )
       SELECT
         (SELECT array_agg(id::text) FROM runs WHERE id = ANY($3::uuid[]) AND status NOT IN ('queued', 'running')) AS ended,
         -- The beat's own row is not visible to the rest of this statement: count it apart.
         (SELECT count(*) + 1 FROM instances i WHERE ${ALIVE('i')} AND i.id <> $1) AS alive,
         (SELECT count(DISTINCT instance_id) FROM run_leases l
            WHERE l.instance_id <> $1 AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.id = l.instance_id AND ${ALIVE('i')})) AS dead,
         (SELECT count(*) FROM run_leases) AS leases`,
      [instanceId, intervalMs, `{${localRunIds.join(',')}}`],
    );
    const row = rows[0];
    return {
      endedElsewhere: row?.ended ?? [],
      alive: Number(row?.alive ?? 0),
      dead: Number(row?.dead ?? 0),
      leases: Number(row?.leases ?? 0),
    };
  }

  /**
   * Ends up to `limit` queued or running runs of dead instances `interrupted` with `error`, and
   * returns them; each run is returned to exactly one caller, however many sweep at once
   * (rows locked by another sweeper are skipped, and the status is checked again under the
   * lock). Sweeps nothing unless `sweeperId`'s own beat is current, so an instance cut off
   * from the database for longer than its peers' patience cannot sweep on stale knowledge.
   */
  async sweep(sweeperId: string, error: RunError, limit: number): Promise<RunRecord[]> {
    const rows = await this.db.query(
      `UPDATE runs SET status = 'interrupted', error = $2::jsonb, finished_at = date_trunc('milliseconds', clock_timestamp())
       WHERE id IN (
         SELECT r.id FROM runs r JOIN instances i ON i.id = r.instance_id
         WHERE r.status IN ('queued', 'running') AND i.id <> $1 AND NOT (${ALIVE('i')})
           AND EXISTS (SELECT 1 FROM instances me WHERE me.id = $1 AND ${ALIVE('me')})
         LIMIT $3
         FOR UPDATE OF r SKIP LOCKED
       ) AND status IN ('queued', 'running')
       RETURNING *`,
      [sweeperId, JSON.stringify(error), limit],
    );
    return rows.map(toRun);
  }

  /** Whether the instance has beaten recently; false for one that never did. */
  async isAlive(instanceId: string): Promise<boolean> {
    const rows = await this.db.query<{ alive: boolean }>(`SELECT ${ALIVE('i')} AS alive FROM instances i WHERE i.id = $1`, [instanceId]);
    return rows[0]?.alive === true;
  }

  /**
   * Instances that are alive or hold leases (alive first, at most 200), each with its leases;
   * instances that hold leases but never beat are listed as dead with no beat.
   */
  async list(): Promise<InstanceView[]> {
    const rows = await this.db.query<{ id: string; alive: boolean; started_at: Date | null; last_beat_at: Date | null; leases: string }>(
      `WITH held AS (SELECT instance_id, count(*) AS leases FROM run_leases GROUP BY instance_id)
       SELECT coalesce(i.id, h.instance_id) AS id, coalesce(${ALIVE('i')}, false) AS alive,
              i.started_at, i.last_beat_at, coalesce(h.leases, 0) AS leases
       FROM instances i FULL JOIN held h ON h.instance_id = i.id
       WHERE h.leases IS NOT NULL OR ${ALIVE('i')}
       ORDER BY 2 DESC, 1
       LIMIT ${LIST_MAX}`,
    );
    return rows.map((r) => ({
      id: String(r.id),
      alive: r.alive === true,
      startedAt: r.started_at ?? null,
      lastBeatAt: r.last_beat_at ?? null,
      leases: Number(r.leases),
    }));
  }

  /** Forgets this instance at a clean shutdown, unless it still has runs to sweep. */
  async remove(instanceId: string): Promise<void> {
    await this.db.query(
      `DELETE FROM instances WHERE id = $1
         AND NOT EXISTS (SELECT 1 FROM runs WHERE instance_id = $1 AND status IN ('queued', 'running'))`,
      [instanceId],
    );
  }
}
