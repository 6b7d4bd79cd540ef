import { Router } from 'express';
import type { TierLimits } from '../../config/tier-limits.js';
import type { Account, AccountRepository } from '../../db/account-repository.js';
import { InvalidRequestError, NotFoundError } from '../../domain/index.js';
import type { ApiKeyAuth } from '../auth.js';
import { accountBodies } from '../request-schemas.js';
import type { AccountBody } from '../response-schemas.js';
import { parse, uuidParam } from '../validation.js';

/** Key prefixes are the first 8 characters of a base64url key. */
const KEY_PREFIX = /^[A-Za-z0-9_-]{8}$/;

function accountView(account: Account): AccountBody {
  return { id: account.id, name: account.name, tier: account.tier, created_at: account.createdAt.toISOString() };
}

/** Accounts and keys; mounted at /v1/admin behind ADMIN_TOKEN. */
export function adminRouter(deps: { accounts: AccountRepository; auth: ApiKeyAuth; tierLimits: TierLimits }): Router {
  const router = Router();
  const { create: createBody, patch: patchBody } = accountBodies([...deps.tierLimits.keys()]);
  const body = (value: unknown): unknown => {
    if (value === undefined || value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new InvalidRequestError('The body must be a JSON object.', 'body');
    }
    return value;
  };

  router.post('/accounts', async (req, res) => {
    const { name, tier: tierName } = parse(createBody, body(req.body), 'body');
    const { account, key } = await deps.accounts.create(name, tierName);
    res.status(201).json({ ...accountView(account), api_key: key.apiKey, key_prefix: key.prefix });
  });

  router.get('/accounts/:id', async (req, res) => {
    const account = await deps.accounts.get(uuidParam(req.params.id));
    if (account === null) throw new NotFoundError();
    res.json({
      ...accountView(account),
      keys: account.keys.map((k) => ({
        key_prefix: k.prefix,
        created_at: k.createdAt.toISOString(),
        revoked_at: k.revokedAt?.toISOString() ?? null,
      })),
    });
  });

  router.patch('/accounts/:id', async (req, res) => {
    const id = uuidParam(req.params.id);
    const { tier: tierName } = parse(patchBody, body(req.body), 'body');
    const account = await deps.accounts.setTier(id, tierName);
    if (account === null) throw new NotFoundError();
    deps.auth.forgetAccount(account.id);
    res.json(accountView(account));
  });

  router.post('/accounts/:id/keys', async (req, res) => {
    const key = await deps.accounts.issueKey(uuidParam(req.params.id));
    if (key === null) throw new NotFoundError();
    res.status(201).json({ api_key: key.apiKey, key_prefix: key.prefix });
  });

  router.delete('/keys/:prefix', async (req, res) => {
    const prefix = String(req.params.prefix);
    if (!KEY_PREFIX.test(prefix)) throw new NotFoundError('No active key has this prefix.');
    const accountId = await deps.accounts.revokeKey(prefix);
    if (accountId === null) throw new NotFoundError('No active key has this prefix.');
    deps.auth.forgetAccount(accountId);
    res.json({ key_prefix: req.params.prefix, revoked: true });
  });

  return router;
}
