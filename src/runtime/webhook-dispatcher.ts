import { BackgroundLoop } from '../concurrency/background-loop.js';
import type { AttemptRecord, ClaimedDelivery, WebhookRepository } from '../db/webhook-repository.js';
import type { Logger, RunRecord } from '../domain/index.js';
import { signWebhook } from '../lib/standard-webhooks.js';
import { attemptOutcome, type RetrySchedule } from './webhook-policy.js';
import { sendWebhook, type SendResult } from './webhook-sender.js';

/** The `webhooks` config section as the dispatcher uses it (the secret as its key). */
export interface WebhookSettings extends RetrySchedule {
  readonly key: Buffer;
  readonly allowPrivate: boolean;
  readonly timeoutMs: number;
  readonly concurrency: number;
}

/** Counts what attempts came to (metrics): delivered, to be retried (`pending`), or failed for good. */
export interface WebhookObserver {
  attempted(outcome: AttemptRecord['state']): void;
}

export interface WebhookDispatcherOptions {
  readonly instanceId: string;
  readonly settings: WebhookSettings;
  readonly deliveries: Pick<WebhookRepository, 'claim' | 'record' | 'releaseClaims'>;
  /** The body of a run's delivery: its record as the contract shows it (JSON text). */
  readonly render: (run: RunRecord) => string;
  readonly logger: Logger;
  readonly observer?: WebhookObserver;
  /** How often due deliveries are looked for (ms); default 1000. */
  readonly pollMs?: number;
  /** One attempt's POST (tests replace it); default sendWebhook. */
  readonly send?: typeof sendWebhook;
}

const DEFAULT_POLL_MS = 1_000;
/** A claim outlives its attempt's timeout by this much: time to record the outcome (a busy pool, a slow event loop). */
const LEASE_MARGIN_MS = 10_000;

/**
 * Delivers the webhooks of ended runs, from every instance: claims due deliveries (at most
 * WEBHOOK_CONCURRENCY in flight here), POSTs each signed per Standard Webhooks (`webhook-id`
 * the delivery's, the same on every attempt; `webhook-timestamp` and `webhook-signature` per
 * attempt) and records what the attempt came to: delivered, failed for good, or due again
 * after a jittered backoff. A claim is a lease: if this process dies mid attempt, the delivery
 * comes due again when it runs out (at once when it restarts with the same INSTANCE_ID).
 */
export class WebhookDispatcher {
  private readonly loop: BackgroundLoop;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly send: typeof sendWebhook;
  private readonly leaseMs: number;
  /** The claim under way: one at a time. */
  private filling: Promise<void> | undefined;
  /** The last claim took every free place: more may be due, claimed as places free up. */
  private backlog = false;
  private closing: Promise<void> | undefined;

  constructor(private readonly options: WebhookDispatcherOptions) {
    this.send = options.send ?? sendWebhook;
    this.leaseMs = options.settings.timeoutMs + LEASE_MARGIN_MS;
    this.loop = new BackgroundLoop(
      () => this.fill(),
      options.pollMs ?? DEFAULT_POLL_MS,
      (error) => options.logger.warn('claiming due webhook deliveries failed; the next poll retries', { error }),
    );
  }

  /** Deliveries being attempted here now. */
  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /** Frees the claims a previous process with this INSTANCE_ID left, then starts polling. */
  async start(): Promise<void> {
    const released = await this.options.deliveries.releaseClaims(this.options.instanceId);
    if (released > 0) this.options.logger.info('retrying webhook deliveries a previous process left mid attempt', { count: released });
    this.loop.start();
  }

  /** Claims due deliveries for the free places and starts them; resolves once claimed (tests drive it). */
  tick(): Promise<void> {
    return this.fill();
  }

  private fill(): Promise<void> {
    this.filling ??= this.claimFree().finally(() => {
      this.filling = undefined;
    });
    return this.filling;
  }

  private async claimFree(): Promise<void> {
    const free = this.options.settings.concurrency - this.inFlight.size;
    if (free <= 0 || this.closing !== undefined) return;
    const claimed = await this.options.deliveries.claim(this.options.instanceId, free, this.leaseMs);
    this.backlog = claimed.length === free;
    for (const delivery of claimed) {
      const attempt = this.attempt(delivery).finally(() => {
        this.inFlight.delete(attempt);
        if (this.backlog && this.closing === undefined) {
          this.fill().catch((error: unknown) => this.options.logger.warn('claiming due webhook deliveries failed', { error }));
        }
      });
      this.inFlight.add(attempt);
    }
  }

  /** One attempt, from the claim to its recorded outcome; never rejects. */
  private async attempt(delivery: ClaimedDelivery): Promise<void> {
    const { settings, logger } = this.options;
    const startedMs = Date.now();
    const log = { run_id: delivery.run.id, webhook_id: delivery.id, attempt: delivery.attempt, host: hostOf(delivery.url) };
    let outcome: AttemptRecord;
    try {
      const spent = spentReason(delivery, settings);
      outcome =
        spent !== null
          ? { state: 'failed', lastStatus: null, lastError: spent }
          : attemptOutcome(await this.post(delivery), delivery.attempt, delivery.ageMs + (Date.now() - startedMs), settings);
    } catch (error) {
      // Rendering or signing failed: a defect, not the receiver's doing; the lease retries it.
      logger.error('a webhook attempt failed inside agentd', { ...log, error });
      return;
    }
    this.options.observer?.attempted(outcome.state);
    try {
      const recorded = await this.options.deliveries.record(delivery.run.id, delivery.attempt, outcome);
      if (!recorded) logger.warn('a webhook attempt outlived its lease; its outcome was not recorded', { ...log, state: outcome.state });
    } catch (error) {
      logger.warn('could not record a webhook attempt; it is retried when its lease ends', { ...log, state: outcome.state, error });
      return;
    }
    logAttempt(logger, log, outcome);
  }

  private post(delivery: ClaimedDelivery): Promise<SendResult> {
    const { settings } = this.options;
    const body = this.options.render(delivery.run);
    const timestampS = Math.floor(Date.now() / 1000);
    const headers = {
      'content-type': 'application/json',
      'user-agent': 'agentd-webhooks',
      'webhook-id': delivery.id,
      'webhook-timestamp': String(timestampS),
      'webhook-signature': signWebhook(settings.key, delivery.id, timestampS, body),
    };
    return this.send(new URL(delivery.url), { headers, body, timeoutMs: settings.timeoutMs, allowPrivate: settings.allowPrivate });
  }

  /** Stops claiming and waits for the attempts in flight (each bounded by WEBHOOK_TIMEOUT_MS). Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.loop.stop();
      await this.filling?.catch(() => undefined); // its failure was logged by the loop
      await Promise.all([...this.inFlight]);
    })();
    return this.closing;
  }
}

/**
 * A claimed delivery with no attempt left (an attempt cut short by a crash used the last one)
 * or past WEBHOOK_MAX_AGE_MS (the fleet was down): failed without sending. Null otherwise.
 */
function spentReason(delivery: ClaimedDelivery, schedule: RetrySchedule): string | null {
  if (delivery.attempt > schedule.maxAttempts) return `gave up after ${schedule.maxAttempts} attempts (the last one was cut short)`;
  if (delivery.ageMs > schedule.maxAgeMs) return 'gave up: WEBHOOK_MAX_AGE_MS passed since the run ended';
  return null;
}

/** The URL's host, for logs: never its path or query, which may hold a receiver's token. */
function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return '(unparseable URL)';
  }
}

function logAttempt(logger: Logger, log: Record<string, unknown>, outcome: AttemptRecord): void {
  const fields = { ...log, status: outcome.lastStatus, last_error: outcome.lastError };
  switch (outcome.state) {
    case 'delivered':
      logger.info('webhook delivered', { ...log, status: outcome.lastStatus });
      return;
    case 'pending':
      logger.info('webhook attempt failed; retrying', { ...fields, retry_in_ms: outcome.retryInMs });
      return;
    case 'failed':
      logger.warn('webhook delivery failed for good', fields);
      return;
    default: {
      const unreachable: never = outcome;
      throw new Error(`unknown delivery outcome ${JSON.stringify(unreachable)}`);
    }
  }
}
