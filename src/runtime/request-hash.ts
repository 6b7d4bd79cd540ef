import { createHash } from 'node:crypto';
import { canonicalJson } from '../lib/canonical-json.js';

/** The fields of a run request that make it the same request (what the client asked for). */
export interface RequestFields {
  readonly agent: string;
  readonly input: unknown;
  readonly sessionId: string | null;
  readonly model: string | null;
  readonly timeoutMs: number | null;
  readonly metadata: unknown;
  /** The run's webhook URL; null or absent: none. */
  readonly webhook?: string | null;
}

/**
 * SHA-256 (hex) of the request's meaningful fields as canonical JSON: a retry with the same
 * Idempotency-Key must hash the same. An absent field and null are the same request (the
 * contract's defaults); key order and number spelling (`1.0`, `1`) do not matter. A request
 * without a webhook hashes as it did before webhooks existed.
 */
export function requestHash(fields: RequestFields): string {
  const canonical = canonicalJson({
    agent: fields.agent,
    input: fields.input ?? null,
    session_id: fields.sessionId,
    model: fields.model,
    timeout_ms: fields.timeoutMs,
    metadata: fields.metadata ?? null,
    ...(fields.webhook === null || fields.webhook === undefined ? {} : { webhook: fields.webhook }),
  });
  return createHash('sha256').update(canonical).digest('hex');
}
