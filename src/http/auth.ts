import { createHash, timingSafeEqual } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Request, RequestHandler } from 'express';
import { type Account, type AccountRepository, hashApiKey } from '../db/account-repository.js';
import { NotFoundError, UnauthorizedError } from '../domain/index.js';
import { BoundedCache } from '../lib/bounded-cache.js';
import type { AuthThrottle } from './auth-throttle.js';

/** A revoked key keeps working on other instances for at most this long (the contract allows 5 s). */
const KEY_CACHE_MS = 2_000;
const KEY_CACHE_MAX = 10_000;

declare module 'express-serve-static-core' {
  interface Request {
    /** The authenticated account; set by the API-key middleware on /v1 routes. */
    account?: Account;
  }
}

function bearer(req: Request): string | null {
  const header = req.headers.authorization;
  if (header === undefined) return null;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1] ?? null;
}

/** The authenticated account of a /v1 request (the middleware guarantees it is there). */
export function accountOf(req: Request): Account {
  if (req.account === undefined) throw new UnauthorizedError();
  return req.account;
}

/** API keys: looked up by SHA-256 hash, cached briefly, with repeated failures slowed per address. */
export class ApiKeyAuth {
  private readonly cache = new BoundedCache<string, Account>({ maxEntries: KEY_CACHE_MAX, ttlMs: KEY_CACHE_MS });

  constructor(
    private readonly accounts: AccountRepository,
    private readonly throttle: AuthThrottle,
  ) {}

  /** Authenticates a /v1 request by its key; one a stream token already authenticated passes as it is. */
  readonly middleware: RequestHandler = async (req, _res, next) => {
    if (req.account !== undefined) {
      next();
      return;
    }
    const key = bearer(req);
    const account = key === null ? null : await this.lookup(hashApiKey(key));
    if (account === null) {
      await sleep(this.throttle.fail(req.socket.remoteAddress ?? 'unknown'));
      throw new UnauthorizedError();
    }
    req.account = account;
    next();
  };

  /** Drops cached keys of an account now (tier changes, revocations on this instance). */
  forgetAccount(accountId: string): void {
    for (const [hash, account] of this.cache.entries()) if (account.id === accountId) this.cache.delete(hash);
  }

  private async lookup(keyHash: string): Promise<Account | null> {
    const cached = this.cache.get(keyHash);
    if (cached !== undefined) return cached;
    const account = await this.accounts.findByKeyHash(keyHash);
    if (account !== null) this.cache.set(keyHash, account);
    return account;
  }
}

const digest = (text: string) => createHash('sha256').update(text).digest();

/**
 * Bearer-token check in constant time, with repeated failures slowed like API keys'. With no
 * token configured the routes answer 404.
 */
export function tokenAuth(token: string | null, throttle: AuthThrottle): RequestHandler {
  const expected = token === null ? null : digest(token);
  return async (req, _res, next) => {
    if (expected === null) throw new NotFoundError('No route matches this method and path.');
    const given = bearer(req);
    if (given === null || !timingSafeEqual(digest(given), expected)) {
      await sleep(throttle.fail(req.socket.remoteAddress ?? 'unknown'));
      throw new UnauthorizedError('Send the token as "Authorization: Bearer <token>".');
    }
    next();
  };
}
