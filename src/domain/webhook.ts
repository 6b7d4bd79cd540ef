/**
 * The delivery of a run's webhook: the run record POSTed to the URL the run carries once it
 * ends. `pending` until a receiver answers 2xx (`delivered`) or agentd gives up (`failed`: a 4xx
 * other than 408/429, a refused target, or the attempts or the time allowed ran out).
 */
export const WEBHOOK_STATES = ['pending', 'delivered', 'failed'] as const;
export type WebhookState = (typeof WEBHOOK_STATES)[number];

/** A run's webhook and where its delivery stands, as the run record shows it. */
export interface RunWebhook {
  readonly url: string;
  /** `pending` also while the run has not ended (nothing is due yet). */
  readonly state: WebhookState;
  /** Attempts started so far (one that was cut short by a crash counts too). */
  readonly attempts: number;
  /** HTTP status of the last answer, null when none came (no attempt yet, or no answer). */
  readonly lastStatus: number | null;
  /** Why the last attempt did not deliver, in a sentence; null when it did or none was made. */
  readonly lastError: string | null;
}
