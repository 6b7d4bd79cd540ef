/**
 * The operator's dashboard: its session rules over HTTP, then the page itself driven in
 * headless Chromium (playwright-core over Debian's Chromium) while runs queue, with a
 * screenshot left in tests/artifacts/dashboard.png.
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { ADMIN_TOKEN, startAgentd, type TestAgentd } from '../helpers/agentd.js';
import { agentsDir } from '../helpers/agents-dir.js';
import { launchChromium } from '../helpers/browser.js';
import { request } from '../helpers/http.js';
import { unique } from '../helpers/ids.js';
import { readSse } from '../helpers/sse.js';

const ARTIFACTS = fileURLToPath(new URL('../artifacts/', import.meta.url));
const SESSION_COOKIE = 'agentd_dashboard';
const LONG = { agent: 'simulate', input: { events: 100_000, interval_ms: 50 } };
/** Every wait of the browser test, in ms: a generous deadline, not a speed claim. */
const WAIT_MS = 20_000;

interface Login {
  readonly status: number;
  readonly setCookie: string | null;
  /** `name=value` of the session cookie, to send back. */
  readonly cookie: string | null;
  readonly body: any;
}

/** Logs in with a JSON body, as a script would. */
async function login(url: string, token: string, headers: Record<string, string> = {}): Promise<Login> {
  const res = await fetch(`${url}/dashboard/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ token }),
  });
  const setCookie = res.headers.get('set-cookie');
  const text = await res.text();
  return { status: res.status, setCookie, cookie: setCookie?.split(';')[0] ?? null, body: text === '' ? undefined : JSON.parse(text) };
}

const snapshot = (url: string, cookie: string | null) =>
  request(url, 'GET', '/dashboard/api/snapshot', { headers: cookie === null ? {} : { cookie } });

describe('dashboard without ADMIN_TOKEN', () => {
  let agentd: TestAgentd;
  before(async () => {
    agentd = await startAgentd('pglite', { ADMIN_TOKEN: '' });
  });
  after(async () => {
    await agentd.close();
  });

  it('does not exist, like the admin routes', async () => {
    for (const [method, path] of [
      ['GET', '/dashboard'],
      ['GET', '/dashboard/app.js'],
      ['POST', '/dashboard/login'],
      ['GET', '/dashboard/api/snapshot'],
    ] as const) {
      const res = await request(agentd.url, method, path, method === 'POST' ? { body: { token: ADMIN_TOKEN } } : {});
      assert.equal(res.status, 404, `${method} ${path}`);
      assert.equal(res.body.error.code, 'not_found');
    }
  });
});

describe('dashboard', () => {
  let agentd: TestAgentd;
  let browser: Browser | undefined;
  /** Runs this file started, cancelled after it whatever happened. */
  const started: Array<{ apiKey: string; id: string }> = [];
  let agents: Awaited<ReturnType<typeof agentsDir>>;

  before(async () => {
    agents = await agentsDir();
    agentd = await startAgentd('postgres', {
      AGENTS_DIR: agents.dir,
      MAX_CONCURRENT_AGENT_RUNS: '2',
      RUN_QUEUE_MAX: '10',
      RUN_QUEUE_TIMEOUT_MS: '120000',
      TIER_LIMITS: 'free:1,pro:5,bulk:100',
    });
  });
  after(async () => {
    await Promise.all(started.map((run) => agentd.as(run.apiKey, 'POST', `/v1/runs/${run.id}/cancel`)));
    await browser?.close();
    await agentd.waitForIdle();
    await agentd.close();
    await agents.remove();
  });

  async function startRun(apiKey: string, body: unknown = LONG): Promise<{ id: string; status: string }> {
    const res = await agentd.as(apiKey, 'POST', '/v1/runs', { body });
    assert.equal(res.status, 202, res.text);
    started.push({ apiKey, id: res.body.id });
    return res.body;
  }

  describe('sessions', () => {
    it('trades the admin token, sent in a POST body, for an HttpOnly SameSite=Strict cookie that is not the token', async () => {
      const wrong = await login(agentd.url, `${ADMIN_TOKEN}-wrong`);
      assert.equal(wrong.status, 401);
      assert.equal(wrong.body.error.code, 'unauthorized');
      assert.equal(wrong.setCookie, null);

      const right = await login(agentd.url, ADMIN_TOKEN);
      assert.equal(right.status, 200);
      assert.ok(Date.parse(right.body.expires_at) > Date.now() + 11 * 3600_000);
      const attributes = (right.setCookie ?? '').split(';').map((part) => part.trim());
      assert.ok(attributes[0]?.startsWith(`${SESSION_COOKIE}=`));
      for (const attribute of ['HttpOnly', 'SameSite=Strict', 'Path=/dashboard', 'Max-Age=43200']) {
        assert.ok(attributes.includes(attribute), `${attribute} in ${right.setCookie}`);
      }
      assert.ok(!right.setCookie?.includes(ADMIN_TOKEN), 'the cookie is not the token');

      assert.equal((await snapshot(agentd.url, null)).status, 401);
      const live = await snapshot(agentd.url, right.cookie);
      assert.equal(live.status, 200);
      assert.equal(live.headers.get('cache-control'), 'no-store');
      assert.equal(live.body.slots.capacity, 2);
      assert.deepEqual(live.body.why_waiting, []);
    });

    it('takes the token only from a login body: not as a bearer, not in a URL', async () => {
      const bearer = await request(agentd.url, 'GET', '/dashboard/api/snapshot', { token: ADMIN_TOKEN });
      assert.equal(bearer.status, 401);
      const query = await request(agentd.url, 'GET', `/dashboard?token=${ADMIN_TOKEN}`);
      assert.equal(query.status, 200);
      assert.match(query.text, /<form id="login"/, 'still the login form');
      assert.equal(query.headers.get('set-cookie'), null);
    });

    it('refuses a cross-site login or logout (CSRF), and a logout ends the session', async () => {
      const crossSiteHeaders: Array<Record<string, string>> = [{ origin: 'http://evil.example' }, { 'sec-fetch-site': 'cross-site' }];
      for (const headers of crossSiteHeaders) {
        const refused = await login(agentd.url, ADMIN_TOKEN, headers);
        assert.equal(refused.status, 403);
        assert.equal(refused.setCookie, null);
      }
      const { cookie } = await login(agentd.url, ADMIN_TOKEN, { origin: agentd.url, 'sec-fetch-site': 'same-origin' });
      assert.ok(cookie);
      const crossSite = await request(agentd.url, 'POST', '/dashboard/logout', { headers: { cookie, origin: 'http://evil.example' } });
      assert.equal(crossSite.status, 403);
      assert.equal((await snapshot(agentd.url, cookie)).status, 200, 'the session still works');

      const logout = await request(agentd.url, 'POST', '/dashboard/logout', { headers: { cookie } });
      assert.equal(logout.status, 204);
      assert.match(logout.headers.get('set-cookie') ?? '', /^agentd_dashboard=; Path=\/dashboard; Max-Age=0; HttpOnly; SameSite=Strict/);
      assert.equal((await snapshot(agentd.url, cookie)).status, 401, 'the logged-out value is refused');
    });

    it("follows any account's run events with the session cookie", async () => {
      const { cookie } = await login(agentd.url, ADMIN_TOKEN);
      assert.ok(cookie);
      const account = await agentd.createAccount('pro', unique('events'));
      const run = await startRun(account.apiKey, { agent: 'simulate', input: { events: 3, interval_ms: 1 } });
      const events = await readSse(`${agentd.url}/dashboard/api/runs/${run.id}/events`, { token: 'not-used', headers: { cookie } });
      assert.equal(events.status, 200);
      assert.deepEqual(
        events.events.map((e) => e.event),
        ['status', 'token', 'token', 'token', 'end'],
      );
      const resumed = await fetch(`${agentd.url}/dashboard/api/runs/${run.id}/events`, {
        headers: { cookie, 'last-event-id': events.events.at(-1)?.id ?? '' },
      });
      assert.equal(resumed.status, 204, 'nothing after the end: an EventSource stops reconnecting');
      const anonymous = await request(agentd.url, 'GET', `/dashboard/api/runs/${run.id}/events`);
      assert.equal(anonymous.status, 401);
      const unknown = await request(agentd.url, 'GET', `/dashboard/api/runs/00000000-0000-4000-8000-000000000000/events`, {
        headers: { cookie },
      });
      assert.equal(unknown.status, 404);
    });
  });

  describe('in Chromium', () => {
    let context: BrowserContext;
    let page: Page;

    before(async () => {
      browser = await launchChromium();
      context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
      page = await context.newPage();
      page.setDefaultTimeout(WAIT_MS);
    });

    /** Waits until an element matching `selector` shows `text`. */
    const shows = (selector: string, text: string | RegExp) => page.locator(selector, { hasText: text }).first().waitFor();

    it('logs in: a wrong token shows an error, the right one the page and a session cookie', { timeout: 60_000 }, async () => {
      await page.goto(`${agentd.url}/dashboard`);
      await page.fill('#token', 'not-the-admin-token-at-all');
      await page.click('#login button[type=submit]');
      await shows('#login-error', 'That is not the admin token.');

      await page.fill('#token', ADMIN_TOKEN);
      await page.click('#login button[type=submit]');
      await page.locator('#connection[data-state="live"]').waitFor();
      assert.equal(new URL(page.url()).pathname, '/dashboard');
      assert.ok(!page.url().includes(ADMIN_TOKEN));
      const session = (await context.cookies()).find((c) => c.name === SESSION_COOKIE);
      assert.ok(session);
      assert.equal(session.httpOnly, true);
      assert.equal(session.sameSite, 'Strict');
      assert.equal(session.path, '/dashboard');
      assert.notEqual(session.value, ADMIN_TOKEN);
      const hoursLeft = (session.expires * 1000 - Date.now()) / 3600_000;
      assert.ok(hoursLeft > 11.9 && hoursLeft <= 12, `${hoursLeft} h`);

      await shows('#slots-in-use', '0 / 2');
      await page.locator('#why li.ok').waitFor();
      await shows('#limits tr[data-source="env"]', 'MAX_CONCURRENT_AGENT_RUNS');
    });

    it('shows slots filling, runs queuing and why, and follows one run live', { timeout: 90_000 }, async () => {
      const freeName = unique('free');
      const free = await agentd.createAccount('free', freeName);
      const bulk = await agentd.createAccount('bulk', unique('bulk'));
      const freeRun = await startRun(free.apiKey);
      assert.equal(freeRun.status, 'running');
      const refused = await agentd.as(free.apiKey, 'POST', '/v1/runs', { body: LONG });
      assert.equal(refused.status, 429);
      assert.equal(refused.body.error.code, 'account_concurrency_limit');
      const bulkRuns = [];
      for (let i = 0; i < 4; i++) bulkRuns.push(await startRun(bulk.apiKey));
      const queued = bulkRuns.filter((r) => r.status === 'queued');
      assert.equal(queued.length, 3);

      await shows('#slots-in-use', '2 / 2');
      await shows('#slots-queued', '3 / 10');
      await shows('#why li[data-kind="slots"]', 'Run slots full: 2 of 2 in use, 3 runs queued for a slot');
      await shows('#why li[data-kind="account"]', `Account ${freeName}`);
      await shows('#accounts tr[data-state="at_limit"]', freeName);
      await shows('#by-status tr', /^queued\s*3$/);
      for (const run of [freeRun, ...bulkRuns]) await page.locator(`#runs tr[data-run-id="${run.id}"]`).waitFor();
      for (const run of queued) {
        await shows(`#runs tr[data-run-id="${run.id}"]`, 'a run slot (all 2 in use)');
        await page.locator(`#queue button[data-run-id="${run.id}"]`).waitFor();
      }

      await page.locator(`#runs tr[data-run-id="${freeRun.id}"] button`).click();
      await page.locator('#events-run[data-state="live"]').waitFor();
      await page.locator('#events li[data-type="token"]').first().waitFor();
      // Live: more events arrive while the page is open.
      const seen = await page.locator('#events li').count();
      await page.locator(`#events li:nth-child(${seen + 1})`).waitFor();
      await mkdir(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });

      await agentd.as(free.apiKey, 'POST', `/v1/runs/${freeRun.id}/cancel`);
      await shows('#events li[data-type="end"]', '"cancelled"');
      await page.locator('#events-run[data-state="ended"]').waitFor();
      await shows('#slots-queued', '2 / 10');
      await shows(`#runs tr[data-run-id="${freeRun.id}"]`, 'cancelled');

      // A failed run: its `error` event (which EventSource also hands to onerror) shows among its events.
      await Promise.all(bulkRuns.map((run) => agentd.as(bulk.apiKey, 'POST', `/v1/runs/${run.id}/cancel`)));
      await shows('#slots-in-use', '0 / 2');
      await page.locator('#why li.ok').waitFor();
      const failing = await startRun(bulk.apiKey, { agent: 'simulate', input: { events: 5, interval_ms: 100, fail_at: 3 } });
      await page.locator(`#runs tr[data-run-id="${failing.id}"] button`).click();
      await shows('#events li[data-type="error"]', 'agent_error');
      await shows('#events li[data-type="end"]', '"failed"');
      await page.locator('#events-run[data-state="ended"]').waitFor();
      assert.equal(await page.locator('#events li[data-type="token"]').count(), 3);

      // An agent's own event type shows too (the page reads every type, not a fixed list).
      const greeted = await startRun(bulk.apiKey, { agent: 'hello', input: { name: 'Ada' } });
      await page.locator(`#runs tr[data-run-id="${greeted.id}"] button`).click();
      await shows('#events li[data-type="greeting"]', 'Hello, Ada!');
      await shows('#events li[data-type="end"]', '"completed"');
    });

    it('logs out: back to the form, the cookie gone', { timeout: 30_000 }, async () => {
      await page.click('#logout');
      await page.locator('#login').waitFor();
      assert.equal(
        (await context.cookies()).find((c) => c.name === SESSION_COOKIE),
        undefined,
      );
      await context.close();
    });
  });

  it('slows repeated wrong tokens like other 401s', { timeout: 60_000 }, async () => {
    // Past the free failures (5 in a minute from one address) each wrong token waits 250 ms more.
    let slowest = 0;
    for (let attempt = 0; attempt < 12 && slowest < 250; attempt++) {
      const startedAt = performance.now();
      assert.equal((await login(agentd.url, 'a-wrong-token-for-sure')).status, 401);
      slowest = Math.max(slowest, performance.now() - startedAt);
    }
    assert.ok(slowest >= 250, `the slowest wrong login took ${slowest} ms`);
  });
});
