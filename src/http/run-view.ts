import type { RunRecord, RunView, RunWebhook } from '../domain/index.js';
import type { RunBody } from './response-schemas.js';

/** A run's webhook as the contract shows it: `last_status` and `last_error` once an attempt has them. */
function webhookView(webhook: RunWebhook): NonNullable<RunBody['webhook']> {
  return {
    url: webhook.url,
    state: webhook.state,
    attempts: webhook.attempts,
    ...(webhook.lastStatus === null ? {} : { last_status: webhook.lastStatus }),
    ...(webhook.lastError === null ? {} : { last_error: webhook.lastError }),
  };
}

/**
 * A run as the contract shows it: typed by its schema in the OpenAPI document, and at least
 * `RunView`, the shape the client is typed with.
 */
export function runView(run: RunRecord): RunBody & RunView {
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
    ...(run.webhook === undefined ? {} : { webhook: webhookView(run.webhook) }),
  };
}
