/**
 * Browsers: CORS on the API routes (never the admin's or the dashboard's), and stream tokens
 * for EventSource, first over HTTP, then from a real page in headless Chromium on an allowed
 * origin (a second local server: another port is another origin), and refused on another.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { StreamTokens } from '../../src/http/stream-tokens.js';
import { ADMIN_TOKEN, startAgentd, type TestAgentd } from '../helpers/agentd.js';
import { launchChromium } from '../helpers/browser.js';
import { request } from '../helpers/http.js';
import { unique } from '../helpers/ids.js';

const STREAM_TOKEN_SECRET = 'test-stream-token-secret-0123456789';
/** Every wait in the browser, in ms: a generous deadline, not a speed claim. */
const WAIT_MS = 20_000;
const SHORT = { agent: 'simulate', input: { events: 5, interval_ms: 100 } };

const corsHeaders = (headers: Headers) => [...headers.keys()].filter((name) => name.startsWith('access-control-'));

/** A blank page for the browser to run scripts in, on its own origin. */
async function pageServer(): Promise<{ server: Server; port: number }> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<!doctype html><title>an app</title>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

describe('browsers', () => {
  let agentd: TestAgentd;
  let pages: { server: Server; port: number };
  /** The allowed origin; `http://localhost:<port>` is the same page on another origin. */
  let origin: string;
  let acme: { id: string; apiKey: string };
  let browser: Browser | undefined;

  before(async () => {
    pages = await pageServer();
    origin = `http://127.0.0.1:${pages.port}`;
    agentd = await startAgentd('pglite', { CORS_ORIGINS: `${origin},https://app.example`, STREAM_TOKEN_SECRET });
    acme = await agentd.createAccount('pro', unique('acme'));
  });
  after(async () => {
    await browser?.close();
    await agentd.waitForIdle();
    await agentd.close();
    await new Promise((resolve) => pages.server.close(resolve));
  });

  const startRun = async (body: unknown = SHORT): Promise<string> => {
    const res = await agentd.as(acme.apiKey, 'POST', '/v1/runs', { body });
    assert.equal(res.status, 202, res.text);
    return res.body.id;
  };

  describe('CORS', () => {
    it("answers an allowed origin's preflight, and lets it read answers and errors", async () => {
      const preflight = await fetch(`${agentd.url}/v1/runs`, {
        method: 'OPTIONS',
        headers: {
          origin,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'authorization,content-type,idempotency-key',
        },
      });
      assert.equal(preflight.status, 204);
      assert.equal(preflight.headers.get('access-control-allow-origin'), origin);
      assert.equal(preflight.headers.get('access-control-allow-credentials'), null);
      for (const path of ['/v1/agents', '/openapi.json']) {
        const res = await request(agentd.url, 'GET', path, { token: acme.apiKey, headers: { origin } });
        assert.equal(res.status, 200);
        assert.equal(res.headers.get('access-control-allow-origin'), origin, path);
        assert.match(res.headers.get('access-control-expose-headers') ?? '', /X-Run-Id, X-Request-Id, Retry-After, Location/);
      }
      const unauthorized = await request(agentd.url, 'GET', '/v1/agents', { headers: { origin: 'https://app.example' } });
      assert.equal(unauthorized.status, 401);
      assert.equal(unauthorized.headers.get('access-control-allow-origin'), 'https://app.example', 'a page can read why it was refused');
    });

    it('gives another origin nothing', async () => {
      const res = await request(agentd.url, 'GET', '/v1/agents', {
        token: acme.apiKey,
        headers: { origin: `http://localhost:${pages.port}` },
      });
      assert.equal(res.status, 200);
      assert.deepEqual(corsHeaders(res.headers), []);
    });

    it('never answers for /v1/admin or /dashboard, however the path is written', async () => {
      for (const path of [
        '/v1/admin/capacity',
        '/V1/Admin/capacity',
        '/v1/admin/accounts',
        '/dashboard',
        '/dashboard/api/snapshot',
        '/healthz',
        '/metrics',
      ]) {
        const preflight = await fetch(`${agentd.url}${path}`, {
          method: 'OPTIONS',
          headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' },
        });
        assert.notEqual(preflight.status, 204, path);
        assert.deepEqual(corsHeaders(preflight.headers), [], `preflight ${path}`);
        const res = await request(agentd.url, 'GET', path, { token: ADMIN_TOKEN, headers: { origin } });
        assert.deepEqual(corsHeaders(res.headers), [], path);
      }
    });
  });

  describe('stream tokens over HTTP', () => {
    it("open only their run's events, only until they expire; never an API key in a URL", async () => {
      const [mine, other] = [await startRun(), await startRun()];
      const issued = await agentd.as(acme.apiKey, 'POST', `/v1/runs/${mine}/stream-token`);
      assert.equal(issued.status, 201);
      assert.equal(issued.body.events_url, `/v1/runs/${mine}/events?token=${encodeURIComponent(issued.body.token)}`);
      assert.ok(Date.parse(issued.body.expires_at) - Date.now() <= 300_000);
      const expired = new StreamTokens(STREAM_TOKEN_SECRET, 300, () => Date.now() - 301_000).issue(acme.id, mine).token;
      for (const [what, path] of [
        ['another run', `/v1/runs/${other}/events?token=${issued.body.token}`],
        ['expired', `/v1/runs/${mine}/events?token=${expired}`],
        ['an API key', `/v1/runs/${mine}/events?token=${acme.apiKey}`],
        ['another route', `/v1/runs/${mine}?token=${issued.body.token}`],
      ]) {
        const res = await request(agentd.url, 'GET', path ?? '');
        assert.equal(res.status, 401, what);
        assert.equal(res.body.error.code, 'unauthorized', what);
      }
      const events = await fetch(`${agentd.url}${issued.body.events_url}`);
      assert.equal(events.status, 200);
      assert.match(await events.text(), /event: end/);
      await agentd.waitForEnd(acme.apiKey, other);
    });
  });

  describe('in Chromium', () => {
    let page: Page;

    before(async () => {
      browser = await launchChromium();
      page = await browser.newPage();
      page.setDefaultTimeout(WAIT_MS);
    });

    /**
     * In the page: opens an EventSource on `url` and gathers event types until `end`; or, when
     * the connection is refused, says so (with the status a fetch of the same URL gets).
     */
    const follow = (url: string) =>
      page.evaluate(
        async ({ url, waitMs }) => {
          const types: string[] = [];
          const source = new EventSource(url);
          // No named functions in here: tsx would wrap them in a helper the page does not have.
          const outcome = await new Promise<string>((resolve) => {
            setTimeout(() => resolve('timed out'), waitMs);
            for (const type of ['status', 'message', 'token', 'tool', 'end']) {
              source.addEventListener(type, () => {
                types.push(type);
                if (type === 'end') resolve('end');
              });
            }
            source.addEventListener('error', (event) => {
              if (event instanceof MessageEvent) types.push('error');
              else if (source.readyState === EventSource.CLOSED) resolve('refused');
            });
          });
          source.close();
          const status = outcome === 'refused' ? (await fetch(url)).status : null;
          return { outcome, types, status };
        },
        { url, waitMs: WAIT_MS },
      );

    it('follows a run to its end through a stream token, from an allowed origin', { timeout: 60_000 }, async () => {
      await page.goto(`${origin}/`);
      const started = await page.evaluate(
        async ({ api, key, body }) => {
          const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'idempotency-key': crypto.randomUUID() };
          const run = await fetch(`${api}/v1/runs`, { method: 'POST', headers, body: JSON.stringify(body) });
          const { id } = (await run.json()) as { id: string };
          const token = await fetch(`${api}/v1/runs/${id}/stream-token`, { method: 'POST', headers: { authorization: `Bearer ${key}` } });
          return {
            status: run.status,
            location: run.headers.get('location'),
            requestId: run.headers.get('x-request-id'),
            id,
            token: (await token.json()) as { events_url: string },
          };
        },
        { api: agentd.url, key: acme.apiKey, body: SHORT },
      );
      assert.equal(started.status, 202);
      assert.equal(started.location, `/v1/runs/${started.id}`, 'Location is exposed');
      assert.ok(started.requestId, 'X-Request-Id is exposed');
      const followed = await follow(`${agentd.url}${started.token.events_url}`);
      assert.equal(followed.outcome, 'end');
      assert.deepEqual(followed.types, ['status', 'token', 'token', 'token', 'token', 'token', 'end']);
    });

    it('reads X-Run-Id from a streamed run', { timeout: 60_000 }, async () => {
      const streamed = await page.evaluate(
        async ({ api, key }) => {
          const res = await fetch(`${api}/v1/runs/stream`, {
            method: 'POST',
            headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
            body: JSON.stringify({ agent: 'echo', input: 'hi' }),
          });
          return { runId: res.headers.get('x-run-id'), text: await res.text() };
        },
        { api: agentd.url, key: acme.apiKey },
      );
      assert.match(streamed.runId ?? '', /^[0-9a-f-]{36}$/);
      assert.match(streamed.text, /event: end/);
    });

    it('is refused with a token of another run, or an expired one', { timeout: 60_000 }, async () => {
      const [mine, other] = [await startRun(), await startRun()];
      const token = (await agentd.as(acme.apiKey, 'POST', `/v1/runs/${mine}/stream-token`)).body.token as string;
      const expired = new StreamTokens(STREAM_TOKEN_SECRET, 300, () => Date.now() - 301_000).issue(acme.id, mine).token;
      for (const url of [`/v1/runs/${other}/events?token=${token}`, `/v1/runs/${mine}/events?token=${expired}`]) {
        const refused = await follow(`${agentd.url}${url}`);
        assert.deepEqual(refused, { outcome: 'refused', types: [], status: 401 });
      }
      await agentd.waitForEnd(acme.apiKey, mine);
      await agentd.waitForEnd(acme.apiKey, other);
    });

    it('cannot read the API from an origin not allowed', { timeout: 60_000 }, async () => {
      await page.goto(`http://localhost:${pages.port}/`);
      const outcome = await page.evaluate(
        async ({ api, key }) => {
          try {
            await fetch(`${api}/v1/agents`, { headers: { authorization: `Bearer ${key}` } });
            return 'read';
          } catch (error) {
            return error instanceof TypeError ? 'blocked' : String(error);
          }
        },
        { api: agentd.url, key: acme.apiKey },
      );
      assert.equal(outcome, 'blocked');
    });
  });
});
