import { WEBHOOK_STATES, type RunWebhook, type WebhookState } from '../domain/index.js';
import type { Row } from './database.js';

/**
 * A column for a SELECT over `runs`: the run's delivery (`webhook_delivery`, jsonb), looked up
 * only for runs that have a webhook; null before the run ended (no delivery yet).
 */
export const WEBHOOK_DELIVERY_COLUMN = `CASE WHEN runs.webhook_url IS NOT NULL THEN (
  SELECT jsonb_build_object('state', d.state, 'attempts', d.attempts, 'last_status', d.last_status, 'last_error', d.last_error)
  FROM webhook_deliveries d WHERE d.run_id = runs.id
) END AS webhook_delivery`;

interface DeliveryColumn {
  readonly state?: unknown;
  readonly attempts?: unknown;
  readonly last_status?: unknown;
  readonly last_error?: unknown;
}

function stateOf(value: unknown): WebhookState {
  return WEBHOOK_STATES.includes(value as WebhookState) ? (value as WebhookState) : 'pending';
}

/**
 * The webhook of a `runs` row (with WEBHOOK_DELIVERY_COLUMN, else as `pending` with no
 * attempt: a run that has not ended, or a row read without the column); undefined without one.
 */
export function webhookOf(row: Row): RunWebhook | undefined {
  if (typeof row.webhook_url !== 'string') return undefined;
  const delivery = (row.webhook_delivery ?? {}) as DeliveryColumn;
  return {
    url: row.webhook_url,
    state: stateOf(delivery.state),
    attempts: Number(delivery.attempts ?? 0),
    lastStatus: delivery.last_status === null || delivery.last_status === undefined ? null : Number(delivery.last_status),
    lastError: typeof delivery.last_error === 'string' ? delivery.last_error : null,
  };
}
