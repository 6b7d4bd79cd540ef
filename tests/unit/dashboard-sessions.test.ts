import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DashboardSessions,
  SESSION_COOKIE,
  SESSION_TTL_SECONDS,
  sessionCookie,
  sessionOf,
} from '../../src/http/dashboard/dashboard-sessions.js';
import { isSameOrigin } from '../../src/http/dashboard/same-origin.js';

const TOKEN = 'dashboard-admin-token-0123456789';

/** Replaces one dot-separated part of a session value. */
function withPart(value: string, index: number, part: string): string {
  const parts = value.split('.');
  parts[index] = part;
  return parts.join('.');
}

describe('DashboardSessions', () => {
  it('issues a signed value that verifies, is not the token and does not contain it', async () => {
    const sessions = new DashboardSessions(TOKEN);
    const { value, expiresAt } = await sessions.issue();
    assert.equal(await sessions.verify(value), true);
    assert.ok(!value.includes(TOKEN));
    assert.match(value, /^v1\.\d+\.[\w-]+\.[\w-]+$/, 'cookie-safe characters only');
    assert.ok(Math.abs(expiresAt.getTime() - (Date.now() + SESSION_TTL_SECONDS * 1000)) < 5_000);
    assert.notEqual((await sessions.issue()).value, value, 'each session is its own');
  });

  it('refuses a value with a changed expiry, nonce or signature, or of another format', async () => {
    const sessions = new DashboardSessions(TOKEN);
    const { value } = await sessions.issue();
    const [, expires] = value.split('.') as [string, string];
    for (const forged of [
      withPart(value, 1, String(Number(expires) + 3600)),
      withPart(value, 2, 'AAAAAAAAAAAAAAAAAAAAAAAA'),
      withPart(value, 3, 'AAAA'),
      withPart(value, 0, 'v0'),
      `${value}.x`,
      '',
      TOKEN,
    ]) {
      assert.equal(await sessions.verify(forged), false, forged);
    }
  });

  it('refuses a session issued for another admin token (changing the token ends every session)', async () => {
    const { value } = await new DashboardSessions(TOKEN).issue();
    assert.equal(await new DashboardSessions(`${TOKEN}-rotated`).verify(value), false);
    assert.equal(await new DashboardSessions(TOKEN).verify(value), true, 'another process with the same token accepts it');
  });

  it('refuses a session once it expired', async () => {
    let nowMs = Date.UTC(2030, 0, 1);
    const sessions = new DashboardSessions(TOKEN, () => nowMs);
    const { value, expiresAt } = await sessions.issue();
    nowMs = expiresAt.getTime() - 1;
    assert.equal(await sessions.verify(value), true);
    nowMs = expiresAt.getTime();
    assert.equal(await sessions.verify(value), false);
  });

  it('refuses a logged-out session on this process; revoking garbage changes nothing', async () => {
    const sessions = new DashboardSessions(TOKEN);
    const kept = await sessions.issue();
    const ended = await sessions.issue();
    await sessions.revoke('v1.1.2.3');
    await sessions.revoke(ended.value);
    assert.equal(await sessions.verify(ended.value), false);
    assert.equal(await sessions.verify(kept.value), true);
  });
});

describe('session cookie', () => {
  it('is HttpOnly, SameSite=Strict, scoped to /dashboard, with a Max-Age, and Secure over HTTPS', () => {
    const plain = sessionCookie('abc', SESSION_TTL_SECONDS, false);
    assert.equal(plain, `${SESSION_COOKIE}=abc; Path=/dashboard; Max-Age=43200; HttpOnly; SameSite=Strict`);
    assert.match(sessionCookie('abc', 60, true), /; Secure$/);
    assert.match(sessionCookie('', 0, false), /^agentd_dashboard=; Path=\/dashboard; Max-Age=0;/);
  });

  it('is found among other cookies, and missing when absent', () => {
    assert.equal(sessionOf(`a=1; ${SESSION_COOKIE}=v1.2.3.4; b=2`), 'v1.2.3.4');
    assert.equal(sessionOf(`${SESSION_COOKIE}x=1; a=${SESSION_COOKIE}`), null);
    assert.equal(sessionOf(undefined), null);
  });
});

describe('isSameOrigin (CSRF check of dashboard POSTs)', () => {
  const request = (headers: Record<string, string>) => ({ headers: { host: 'agentd.local:8080', ...headers } }) as never;

  it('trusts Sec-Fetch-Site when a browser sends it', () => {
    assert.equal(isSameOrigin(request({ 'sec-fetch-site': 'same-origin', origin: 'https://evil.example' })), true);
    assert.equal(isSameOrigin(request({ 'sec-fetch-site': 'none' })), true);
    assert.equal(isSameOrigin(request({ 'sec-fetch-site': 'cross-site', origin: 'http://agentd.local:8080' })), false);
    assert.equal(isSameOrigin(request({ 'sec-fetch-site': 'same-site' })), false);
  });

  it('else compares Origin with the Host; a request with neither comes from no browser', () => {
    assert.equal(isSameOrigin(request({ origin: 'http://agentd.local:8080' })), true);
    assert.equal(isSameOrigin(request({ origin: 'http://evil.example' })), false);
    assert.equal(isSameOrigin(request({ origin: 'null' })), false);
    assert.equal(isSameOrigin(request({})), true);
  });
});
