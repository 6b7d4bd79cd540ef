import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import { loadConfig } from '../../src/config/config.js';
import { type CorsOrigins, parseCorsOrigins } from '../../src/config/cors-origins.js';
import { ConfigError } from '../../src/domain/index.js';
import { cors } from '../../src/http/cors.js';

describe('CORS_ORIGINS', () => {
  it('is none by default, * alone, or exact origins as browsers send them', () => {
    assert.deepEqual(loadConfig({}).server.corsOrigins, []);
    assert.equal(parseCorsOrigins(' * '), '*');
    assert.deepEqual(parseCorsOrigins('https://App.Example.com, http://localhost:5173/,https://app.example.com:443'), [
      'https://app.example.com',
      'http://localhost:5173',
    ]);
  });

  it('refuses paths, other schemes, * among origins and garbage, naming the variable', () => {
    for (const bad of [
      'https://app.example.com/path',
      'ftp://x.example',
      '*,https://a.example',
      'app.example.com',
      'null',
      'https://u:p@a.example',
    ]) {
      assert.throws(
        () => loadConfig({ CORS_ORIGINS: bad }),
        (error: unknown) => error instanceof ConfigError && /CORS_ORIGINS/.test(error.message),
        bad,
      );
    }
  });
});

/** An app with the middleware in front of a route that answers, and one that fails. */
async function serve(origins: CorsOrigins) {
  const app = express();
  app.use(cors(origins));
  app.get('/ok', (_req, res) => {
    res.setHeader('X-Run-Id', 'r');
    res.json({ ok: true });
  });
  app.use((_req, res) => {
    res.status(401).json({ error: { code: 'unauthorized' } });
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

const corsHeaders = (headers: Headers) => [...headers.keys()].filter((name) => name.startsWith('access-control-'));
const preflight = (url: string, origin: string) =>
  fetch(`${url}/ok`, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
  });

describe('cors middleware', () => {
  const servers: Array<{ close(): Promise<unknown> }> = [];
  let none: string;
  let listed: string;
  let any: string;
  before(async () => {
    const started = await Promise.all([serve([]), serve(['https://app.example']), serve('*')]);
    servers.push(...started);
    [none, listed, any] = started.map((s) => s.url) as [string, string, string];
  });
  after(async () => {
    await Promise.all(servers.map((s) => s.close()));
  });

  it('sends no CORS header at all without origins', async () => {
    const res = await fetch(`${none}/ok`, { headers: { origin: 'https://app.example' } });
    assert.deepEqual(corsHeaders(res.headers), []);
    const pre = await preflight(none, 'https://app.example');
    assert.equal(pre.status, 401, 'a preflight goes on to the routes (and their authentication)');
    assert.deepEqual(corsHeaders(pre.headers), []);
  });

  it("answers an allowed origin's preflight before authentication", async () => {
    const res = await preflight(listed, 'https://app.example');
    assert.equal(res.status, 204);
    assert.equal(res.headers.get('access-control-allow-origin'), 'https://app.example');
    assert.match(res.headers.get('access-control-allow-methods') ?? '', /POST/);
    const allowed = (res.headers.get('access-control-allow-headers') ?? '').toLowerCase();
    for (const header of ['authorization', 'content-type', 'idempotency-key', 'last-event-id']) assert.ok(allowed.includes(header), header);
    assert.equal(res.headers.get('access-control-allow-credentials'), null);
    assert.match(res.headers.get('vary') ?? '', /Origin/);
  });

  it('lets an allowed origin read answers, errors included, and the headers it needs', async () => {
    for (const path of ['/ok', '/nope']) {
      const res = await fetch(`${listed}${path}`, { headers: { origin: 'https://app.example' } });
      assert.equal(res.headers.get('access-control-allow-origin'), 'https://app.example', path);
      assert.equal(res.headers.get('access-control-expose-headers'), 'X-Run-Id, X-Request-Id, Retry-After, Location');
    }
  });

  it('gives another origin, or none, nothing', async () => {
    const other = await fetch(`${listed}/ok`, { headers: { origin: 'https://evil.example' } });
    assert.deepEqual(corsHeaders(other.headers), []);
    assert.match(other.headers.get('vary') ?? '', /Origin/);
    const pre = await preflight(listed, 'https://app.example.evil.example');
    assert.equal(pre.status, 401);
    assert.deepEqual(corsHeaders(pre.headers), []);
    const noOrigin = await fetch(`${listed}/ok`);
    assert.deepEqual(corsHeaders(noOrigin.headers), []);
  });

  it('with * allows every origin, without credentials', async () => {
    const res = await fetch(`${any}/ok`, { headers: { origin: 'https://anyone.example' } });
    assert.equal(res.headers.get('access-control-allow-origin'), '*');
    assert.equal(res.headers.get('access-control-allow-credentials'), null);
    const pre = await preflight(any, 'https://anyone.example');
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get('access-control-allow-origin'), '*');
  });
});
