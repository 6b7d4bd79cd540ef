import { createHmac, timingSafeEqual } from 'node:crypto';
import { AppError } from '../domain/index.js';

/** Keeps the signing key of stream tokens apart from every other use of the secret it comes from. */
const KEY_LABEL = 'agentd stream-token key v1';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** base64url of a 32-byte HMAC-SHA256. */
const SIGNATURE = /^[A-Za-z0-9_-]{43}$/;

/** The server has no key to sign stream tokens with (neither STREAM_TOKEN_SECRET nor ADMIN_TOKEN). */
export class StreamTokensDisabledError extends AppError {
  constructor() {
    super(
      'stream_tokens_disabled',
      501,
      'This server issues no stream tokens: its operator must set STREAM_TOKEN_SECRET (or ADMIN_TOKEN). Read the events with an Authorization header instead.',
    );
  }
}

export interface IssuedStreamToken {
  readonly token: string;
  readonly expiresAt: Date;
}

/**
 * Short-lived, run-scoped credentials for `GET /v1/runs/:id/events?token=`, for a browser's
 * EventSource, which cannot send an Authorization header. A token is
 * `<account id>.<expiry, epoch s>.<HMAC-SHA256 of run, account and expiry>`: any instance with
 * the same secret verifies it without a lookup, it opens only its run's stream, and only until
 * it expires. Nothing is stored, so a token cannot be revoked: its TTL bounds it.
 */
export class StreamTokens {
  private readonly key: Buffer;

  /**
   * `secret`: STREAM_TOKEN_SECRET, else ADMIN_TOKEN (the signing key is derived from it, so a
   * token reveals nothing of the admin token); `ttlSeconds`: STREAM_TOKEN_TTL_SECONDS.
   */
  constructor(
    secret: string,
    private readonly ttlSeconds: number,
    private readonly nowMs: () => number = Date.now,
  ) {
    this.key = createHmac('sha256', secret).update(KEY_LABEL).digest();
  }

  /** The key the settings provide, or null when there is none (the routes then answer 501). */
  static fromSettings(
    settings: {
      readonly streamTokenSecret?: string | undefined;
      readonly adminToken?: string | undefined;
      readonly streamTokenTtlSeconds: number;
    },
    nowMs?: () => number,
  ): StreamTokens | null {
    const secret = settings.streamTokenSecret ?? settings.adminToken;
    return secret === undefined ? null : new StreamTokens(secret, settings.streamTokenTtlSeconds, nowMs);
  }

  /** A token for the account's run, valid for ttlSeconds from now. */
  issue(accountId: string, runId: string): IssuedStreamToken {
    const expiresS = Math.floor(this.nowMs() / 1000) + this.ttlSeconds;
    return { token: `${accountId}.${expiresS}.${this.sign(accountId, runId, expiresS)}`, expiresAt: new Date(expiresS * 1000) };
  }

  /** The account a token was issued to when it is this run's and has not expired; else null. */
  verify(token: string, runId: string): string | null {
    const [accountId, expires, signature, ...rest] = token.split('.');
    if (accountId === undefined || expires === undefined || signature === undefined || rest.length > 0) return null;
    if (!UUID.test(accountId) || !/^\d{1,12}$/.test(expires) || !SIGNATURE.test(signature)) return null;
    const expected = Buffer.from(this.sign(accountId, runId, Number(expires)));
    if (!timingSafeEqual(Buffer.from(signature), expected)) return null;
    return Number(expires) * 1000 > this.nowMs() ? accountId : null;
  }

  private sign(accountId: string, runId: string, expiresS: number): string {
    return createHmac('sha256', this.key).update(`${runId}\n${accountId}\n${expiresS}`).digest('base64url');
  }
}
