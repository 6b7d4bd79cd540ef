import { createHmac, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { BoundedCache } from '../../lib/bounded-cache.js';

/** How long a dashboard session lasts, in seconds (the cookie's Max-Age): 12 h. */
export const SESSION_TTL_SECONDS = 12 * 60 * 60;
/** The session cookie's name; it is sent only to /dashboard paths. */
export const SESSION_COOKIE = 'agentd_dashboard';

const VERSION = 'v1';
/** Sessions logged out on this process that it remembers until they would have expired. */
const REVOKED_MAX = 10_000;
const EXPIRES = /^\d{1,12}$/;

/** The signing key: scrypt of ADMIN_TOKEN, so a stolen cookie is no shortcut to guessing the token. */
function deriveKey(adminToken: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(adminToken, 'agentd dashboard session v1', 32, { N: 16_384, r: 8, p: 1 }, (error, key) =>
      error ? reject(error) : resolve(key),
    );
  });
}

/**
 * Dashboard sessions as signed, expiring cookie values `v1.<expiry, epoch s>.<random nonce>.<HMAC>`.
 * The value is not the admin token, and nothing is kept per session: a session works on every
 * worker process and instance that shares ADMIN_TOKEN (the HMAC key is derived from it, so
 * changing the token ends every session). Logging out clears the cookie and also refuses its
 * value on this process until it expires.
 */
export class DashboardSessions {
  private key: Promise<Buffer> | undefined;
  private readonly revoked: BoundedCache<string, true>;

  constructor(
    private readonly adminToken: string,
    /** The clock, in ms; default `Date.now`. */
    private readonly now: () => number = Date.now,
  ) {
    this.revoked = new BoundedCache({ maxEntries: REVOKED_MAX, ttlMs: SESSION_TTL_SECONDS * 1000, now });
  }

  /** A new session's cookie value and when it expires (SESSION_TTL_SECONDS from now). */
  async issue(): Promise<{ value: string; expiresAt: Date }> {
    const expiresS = Math.floor(this.now() / 1000) + SESSION_TTL_SECONDS;
    const payload = `${VERSION}.${expiresS}.${randomBytes(18).toString('base64url')}`;
    return { value: `${payload}.${(await this.mac(payload)).toString('base64url')}`, expiresAt: new Date(expiresS * 1000) };
  }

  /** Whether `value` is a live session: signed with this token's key, not expired, not logged out here. */
  async verify(value: string): Promise<boolean> {
    return (await this.nonceOf(value)) !== null;
  }

  /** Ends a live session on this process (the browser drops the cookie itself); others are ignored. */
  async revoke(value: string): Promise<void> {
    const nonce = await this.nonceOf(value);
    if (nonce !== null) this.revoked.set(nonce, true);
  }

  /** The nonce of a live session, or null. */
  private async nonceOf(value: string): Promise<string | null> {
    const parts = value.split('.');
    if (parts.length !== 4) return null;
    const [version, expires, nonce, mac] = parts as [string, string, string, string];
    if (version !== VERSION || !EXPIRES.test(expires)) return null;
    const expected = await this.mac(`${version}.${expires}.${nonce}`);
    const given = Buffer.from(mac, 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
    if (Number(expires) * 1000 <= this.now() || this.revoked.has(nonce)) return null;
    return nonce;
  }

  private async mac(payload: string): Promise<Buffer> {
    this.key ??= deriveKey(this.adminToken);
    return createHmac('sha256', await this.key)
      .update(payload)
      .digest();
  }
}

/**
 * The Set-Cookie value of a session (or, with an empty value and max age 0, of its removal):
 * HttpOnly, SameSite=Strict, Path=/dashboard, and Secure when the page was served over HTTPS.
 */
export function sessionCookie(value: string, maxAgeSeconds: number, secure: boolean): string {
  return `${SESSION_COOKIE}=${value}; Path=/dashboard; Max-Age=${maxAgeSeconds}; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
}

/** The session cookie's value in a Cookie header, or null. */
export function sessionOf(cookieHeader: string | undefined): string | null {
  if (cookieHeader === undefined) return null;
  for (const pair of cookieHeader.split(';')) {
    const at = pair.indexOf('=');
    if (at > 0 && pair.slice(0, at).trim() === SESSION_COOKIE) return pair.slice(at + 1).trim();
  }
  return null;
}
