import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import express from 'express';
import { AuthThrottle } from '../../src/http/auth-throttle.js';
import { errorHandler } from '../../src/http/error-handler.js';
import { streamTokenAuth, streamTokenRouter } from '../../src/http/routes/stream-tokens.js';
import { StreamTokens } from '../../src/http/stream-tokens.js';
import { createLogger } from '../../src/observability/logger.js';

const SECRET = 'a-stream-token-secret-0123456789';
const account = randomUUID();
const run = randomUUID();

describe('StreamTokens', () => {
  it("opens its run's stream for its account, on any instance with the same secret", () => {
    const nowMs = 1_700_000_000_000;
    const issued = new StreamTokens(SECRET, 300, () => nowMs).issue(account, run);
    assert.equal(issued.expiresAt.getTime(), nowMs + 300_000);
    assert.equal(new StreamTokens(SECRET, 300, () => nowMs + 1000).verify(issued.token, run), account);
    assert.doesNotMatch(issued.token, new RegExp(SECRET));
  });

  it('is refused for another run, after it expires, with another secret, or altered', () => {
    let nowMs = 1_700_000_000_000;
    const tokens = new StreamTokens(SECRET, 300, () => nowMs);
    const { token } = tokens.issue(account, run);
    assert.equal(tokens.verify(token, randomUUID()), null, 'another run');
    assert.equal(new StreamTokens(`${SECRET}-other`, 300, () => nowMs).verify(token, run), null, 'another secret');
    const [id, expires, signature] = token.split('.') as [string, string, string];
    assert.equal(tokens.verify(`${id}.${Number(expires) + 3600}.${signature}`, run), null, 'a later expiry');
    assert.equal(tokens.verify(`${randomUUID()}.${expires}.${signature}`, run), null, 'another account');
    for (const garbage of ['', 'x', `${token}.x`, `${id}.${expires}`, 'an-api-key-0123456789abcdef0123456789abcdef012']) {
      assert.equal(tokens.verify(garbage, run), null, garbage);
    }
    nowMs += 299_000;
    assert.equal(tokens.verify(token, run), account, 'valid until it expires');
    nowMs += 1_000;
    assert.equal(tokens.verify(token, run), null, 'expired');
  });

  it('signs with STREAM_TOKEN_SECRET, else a key derived from ADMIN_TOKEN, else not at all', () => {
    const ttl = { streamTokenTtlSeconds: 60 };
    const fromAdmin = StreamTokens.fromSettings({ ...ttl, adminToken: SECRET });
    const explicit = StreamTokens.fromSettings({ ...ttl, adminToken: 'some-other-admin-token', streamTokenSecret: SECRET });
    assert.ok(fromAdmin !== null && explicit !== null);
    // Both derive their key from the same text: a token of one opens the other's.
    assert.equal(explicit.verify(fromAdmin.issue(account, run).token, run), account);
    assert.equal(StreamTokens.fromSettings(ttl), null);
  });
});

describe('stream-token routes without a secret', () => {
  it('answer 501 stream_tokens_disabled, saying what the operator must set', async () => {
    const app = express();
    app.use((req, _res, next) => {
      req.account = { id: account, name: 'acme', tier: 'pro', createdAt: new Date() };
      next();
    });
    app.get('/v1/runs/:id/events', streamTokenAuth({ tokens: null, accounts: {} as never, throttle: new AuthThrottle() }));
    app.use(streamTokenRouter({ tokens: null, runs: {} as never }));
    app.use(errorHandler(createLogger('error'), 1024));
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      for (const [method, path] of [
        ['POST', `/v1/runs/${run}/stream-token`],
        ['GET', `/v1/runs/${run}/events?token=x`],
      ] as const) {
        const res = await fetch(`${url}${path}`, { method });
        assert.equal(res.status, 501, path);
        const body = (await res.json()) as { error: { code: string; message: string } };
        assert.equal(body.error.code, 'stream_tokens_disabled');
        assert.match(body.error.message, /STREAM_TOKEN_SECRET/);
      }
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
