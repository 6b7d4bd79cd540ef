import type { RunRecord } from '../domain/index.js';

/** A run as the contract shows it. */
export function runView(run: RunRecord): Record<string, unknown> {
  return {
    id: run.id,
    status: run.status,
    agent: run.agent,
    session_id: run.sessionId,
    created_at: run.createdAt.toISOString(),
    started_at: run.startedAt?.toISOString() ?? null,
    finished_at: run.finishedAt?.toISOString() ?? null,
    ...(run.error === null ? {} : { error: run.error }),
    ...(run.output === undefined ? {} : { output: run.output }),
    instance_id: run.instanceId,
    events_url: `/v1/runs/${run.id}/events`,
  };
}
