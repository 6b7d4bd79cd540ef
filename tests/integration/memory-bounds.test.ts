import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ADMIN_TOKEN } from '../helpers/agentd.js';
import { request } from '../helpers/http.js';
import { type AgentdProcess, spawnAgentd } from '../helpers/process.js';
import { countTokens, openRawListener, type RawListener, rssBytes, watchRss } from '../helpers/raw-sse.js';
import { assertIncreasingIds, readSse } from '../helpers/sse.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { createTestDatabase } from '../helpers/test-database.js';
import { waitFor } from '../helpers/wait-for.js';

const MB = 1024 * 1024;
const BIG_EVENT = { interval_ms: 0, payload_bytes: 65_536 };

/** An agentd process under test, with what the tests ask of it. */
function client(agentd: AgentdProcess) {
  const self = {
    admin: (method: string, path: string, body?: unknown) => request(agentd.url, method, path, { token: ADMIN_TOKEN, body }),
    as: (key: string, method: string, path: string, body?: unknown) => request(agentd.url, method, path, { token: key, body }),
    async account(tier = 'pro'): Promise<string> {
      const res = await self.admin('POST', '/v1/admin/accounts', { name: tier, tier });
      assert.equal(res.status, 201, res.text);
      return res.body.api_key as string;
    },
    async start(key: string, input: Record<string, unknown>): Promise<string> {
      const res = await self.as(key, 'POST', '/v1/runs', { agent: 'simulate', input });
      assert.equal(res.status, 202, res.text);
      return res.body.id as string;
    },
    waitForEnd: (key: string, id: string, timeoutMs = 30_000) =>
      waitFor(
        async () => {
          const res = await self.as(key, 'GET', `/v1/runs/${id}`);
          return res.status === 200 && !['queued', 'running'].includes(res.body.status) ? res.body : undefined;
        },
        { what: `run ${id} to end`, timeoutMs },
      ),
    /** Every limiter of the instance back at zero: slots, leases, pool, listeners, archive queue and reads. */
    waitForIdle: () =>
      waitFor(
        async () => {
          const { body: c } = await self.admin('GET', '/v1/admin/capacity');
          const idle =
            c.runs.in_use === 0 &&
            c.runs.queued === 0 &&
            c.runs.lingering_agents === 0 &&
            c.db_pool.in_use === 0 &&
            c.db_pool.waiting === 0 &&
            c.accounts.leases === 0 &&
            c.sse.listeners === 0 &&
            c.sse.accounts === 0 &&
            c.archive.pending_events === 0 &&
            c.archive.pending_bytes === 0 &&
            c.archive.reads.in_use === 0 &&
            c.archive.reads.queued === 0;
          return idle ? c : undefined;
        },
        { what: 'every limiter at zero', timeoutMs: 30_000 },
      ),
    /** Runs `simulate` through POST /v1/runs/stream and checks it streams every token in order, then `end`. */
    async streamsNormally(key: string, events: number, intervalMs: number): Promise<void> {
      const result = await readSse(`${agentd.url}/v1/runs/stream`, {
        token: key,
        method: 'POST',
        body: { agent: 'simulate', input: { events, interval_ms: intervalMs, payload_bytes: 256 } },
        timeoutMs: 60_000,
      });
      assert.equal(result.status, 200);
      assertIncreasingIds(result.events);
      const tokens = result.events.filter((e) => e.event === 'token').map((e) => e.data.seq as number);
      assert.deepEqual(
        tokens,
        Array.from({ length: events }, (_, i) => i),
      );
      assert.deepEqual(result.events.at(-1)?.data, { status: 'completed' });
    },
  };
  return self;
}

describe('memory bounds on the embedded default (its own process: PGlite and the in-process store)', () => {
  let dataDir: string;
  let agentd: AgentdProcess;
  let api: ReturnType<typeof client>;

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'agentd-bounds-'));
    const env = { DATA_DIR: dataDir, ADMIN_TOKEN, SSE_MAX_LISTENERS_PER_ACCOUNT: '60' };
    // The first start creates the database: PGlite's initdb grows its WebAssembly memory to
    // about 800 MB, which it keeps for good; a restart opens it at about 300 MB. The figures
    // below are the process's own, so they are taken on a restarted instance.
    await (await spawnAgentd(env)).kill('SIGTERM');
    agentd = await spawnAgentd(env);
    api = client(agentd);
  });
  after(async () => {
    await agentd?.kill('SIGTERM');
    await rm(dataDir, { recursive: true, force: true });
  });

  it('holds 50 catch-up listeners that never read to a page each (RSS +250 MB at most, not the run 50 times), while another account streams', async (t) => {
    const pid = agentd.child.pid as number;
    const key = await api.account();
    const other = await api.account();
    const id = await api.start(key, { events: 1_000, ...BIG_EVENT });
    assert.equal((await api.waitForEnd(key, id, 60_000)).status, 'completed');
    await api.waitForIdle();

    const baseline = rssBytes(pid);
    const rss = watchRss(pid);
    const listeners: RawListener[] = [];
    try {
      for (let i = 0; i < 50; i++) listeners.push(await openRawListener(agentd.url, `/v1/runs/${id}/events`, key));
      assert.ok(listeners.every((l) => l.status === 200));
      await waitFor(async () => (await api.admin('GET', '/v1/admin/capacity')).body.sse.listeners === 50);
      // Meanwhile another account's streams are delivered whole, in order.
      for (let i = 0; i < 3; i++) await api.streamsNormally(other, 100, 10);
      // Each listener has read what its socket takes and waits for it to drain: no page is read.
      await waitFor(async () => {
        const { body } = await api.admin('GET', '/v1/admin/capacity');
        return body.sse.listeners === 50 && body.archive.reads.in_use === 0 && body.archive.reads.queued === 0;
      });
      const growth = rss.stop() - baseline;
      t.diagnostic(`RSS ${(baseline / MB).toFixed(0)} MB before the listeners, at most ${(growth / MB).toFixed(0)} MB more with them`);
      // Were each listener to buffer the run (1,000 × 64 KB), it would be 50 × 64 MB = 3.2 GB. Each
      // holds one catch-up page (256 KB), its frames and a socket chunk, about 1 MB (60 MB settled
      // here); the peak adds the pages read and not yet collected (116 to 153 MB measured), so
      // the bound is 5 MB a listener, far under the run's size.
      assert.ok(growth < 250 * MB, `RSS grew by ${(growth / MB).toFixed(0)} MB`);
    } finally {
      rss.stop();
      for (const listener of listeners) listener.close();
    }
    await api.waitForIdle();
  });

  it("survives a free account's 100,000 × 64 KB run under 1 GB of RSS, while another account's runs stream", async (t) => {
    const pid = agentd.child.pid as number;
    const free = await api.account('free');
    const other = await api.account('pro');
    const startRss = rssBytes(pid);
    const rss = watchRss(pid);
    const id = await api.start(free, { events: 100_000, ...BIG_EVENT });
    // Followed by a client that resumes whenever it falls behind and is cut off.
    let tokens = 0;
    const following = new AbortController();
    const follower = countTokens(`${agentd.url}/v1/runs/${id}/events`, free, () => (tokens += 1), following.signal);
    // 2,000 events are 128 MB of event text: what used to pile up whole.
    for (let i = 0; i < 3; i++) await api.streamsNormally(other, 40, 5);
    await waitFor(() => tokens >= 2_000, { what: '2,000 events of the big run', timeoutMs: 90_000 });
    await api.streamsNormally(other, 40, 5);
    const maxRss = rss.stop();
    t.diagnostic(`RSS ${(startRss / MB).toFixed(0)} MB at the start, at most ${(maxRss / MB).toFixed(0)} MB over ${tokens} events`);
    assert.ok(maxRss < 1024 * MB, `RSS reached ${(maxRss / MB).toFixed(0)} MB`);

    assert.equal((await api.as(free, 'POST', `/v1/runs/${id}/cancel`)).status, 202);
    assert.equal((await api.waitForEnd(free, id)).status, 'cancelled');
    const followed = await follower;
    following.abort();
    assert.deepEqual(followed?.endData, { status: 'cancelled' });
    await api.waitForIdle();
  });

  it('fails a run that emits on without awaiting past twice its backlog bound (`event_backlog`); others go on', async () => {
    const key = await api.account();
    const other = await api.account();
    const id = await api.start(key, { events: 100_000, ...BIG_EVENT, ignore_backpressure: true });
    await api.streamsNormally(other, 40, 5);
    const run = await api.waitForEnd(key, id);
    assert.equal(run.status, 'failed');
    assert.equal(run.error.code, 'event_backlog');
    assert.match(run.error.message, /could not be written fast enough within its memory bound/);
    // Its stream ends like any failed run's, `error` then `end`.
    const { events } = await readSse(`${agentd.url}/v1/runs/${id}/events`, { token: key, timeoutMs: 30_000 });
    assert.deepEqual(
      events.slice(-2).map((e) => [e.event, e.data.error?.code ?? e.data.code]),
      [
        ['error', 'event_backlog'],
        ['end', 'event_backlog'],
      ],
    );
    await api.streamsNormally(other, 40, 5);
    await api.waitForIdle();
  });

  it('answers 429 listener_limit past SSE_MAX_LISTENERS_PER_ACCOUNT, with Retry-After, and frees on disconnect', async () => {
    const key = await api.account();
    const other = await api.account();
    const id = await api.start(key, { events: 1_000, interval_ms: 100 });
    const path = `/v1/runs/${id}/events`;
    const listeners: RawListener[] = [];
    try {
      for (let i = 0; i < 60; i++) listeners.push(await openRawListener(agentd.url, path, key));
      assert.ok(listeners.every((l) => l.status === 200));

      const refused = await openRawListener(agentd.url, path, key);
      assert.equal(refused.status, 429);
      assert.equal(refused.headers['retry-after'], '1');
      assert.equal(refused.body.error.code, 'listener_limit');
      assert.equal(refused.body.error.retry_after_s, 1);
      assert.equal(refused.body.error.limit, 60);
      refused.close();
      // A stream that starts a run is refused before the run exists.
      const before = (await api.as(key, 'GET', '/v1/runs?limit=200')).body.runs.length;
      const stream = await openRawListener(agentd.url, '/v1/runs/stream', key, 'POST', { agent: 'echo', input: 'x' });
      assert.equal(stream.status, 429);
      assert.equal(stream.body.error.code, 'listener_limit');
      stream.close();
      assert.equal((await api.as(key, 'GET', '/v1/runs?limit=200')).body.runs.length, before, 'no run was created');
      // Another account is not limited by this one.
      await api.streamsNormally(other, 10, 1);

      listeners.pop()?.close();
      await waitFor(async () => (await api.admin('GET', '/v1/admin/capacity')).body.sse.listeners === 59);
      const again = await openRawListener(agentd.url, path, key);
      listeners.push(again);
      assert.equal(again.status, 200, 'a listener that left makes room');
    } finally {
      for (const listener of listeners) listener.close();
    }
    await waitFor(async () => (await api.admin('GET', '/v1/admin/capacity')).body.sse.listeners === 0);
    assert.equal((await api.as(key, 'POST', `/v1/runs/${id}/cancel`)).status, 202);
    await api.waitForIdle();
  });
});

describe('a run whose events cannot be archived (its database cut through a TCP proxy)', () => {
  let database: { url: string; drop(): Promise<void> };
  let proxy: TcpProxy;
  let agentd: AgentdProcess;
  let api: ReturnType<typeof client>;

  before(async () => {
    database = await createTestDatabase();
    const direct = new URL(database.url);
    proxy = await startTcpProxy(Number(direct.port || 5432), direct.hostname);
    const viaProxy = new URL(database.url);
    viaProxy.host = proxy.address;
    agentd = await spawnAgentd({
      DATABASE_URL: viaProxy.toString(),
      ADMIN_TOKEN,
      DB_ACQUIRE_TIMEOUT_MS: '1000',
      RUN_EVENT_BACKLOG_WAIT_MS: '1000',
    });
    api = client(agentd);
  });
  after(async () => {
    proxy?.restore();
    await agentd?.kill('SIGTERM');
    await proxy?.close();
    await database?.drop();
  });

  it('fails that run with `event_backlog` once its wait runs out; other runs go on; every limiter returns to 0', async () => {
    const key = await api.account();
    const other = await api.account();
    const big = await api.start(key, { events: 100_000, ...BIG_EVENT });
    const small = await api.start(other, { events: 60, interval_ms: 50, payload_bytes: 16 });
    let smallTokens = 0;
    const smallStream = readSse(`${agentd.url}/v1/runs/${small}/events`, { token: other, onEvent: () => (smallTokens += 1) });
    await waitFor(() => smallTokens >= 3, { what: 'the small run to stream' });

    proxy.cut();
    const tokensAtCut = smallTokens;
    const failedLine = () =>
      agentd.logs().find((line) => line.run_id === big && String(line.message).includes('could not be written within its memory bound'));
    await waitFor(failedLine, { what: 'the big run to give up waiting for its backlog' });
    // The small run's events still stream while the database is away (its backlog is small).
    await waitFor(() => smallTokens > tokensAtCut, { what: 'the small run to stream during the outage' });
    proxy.restore();

    const run = await api.waitForEnd(key, big);
    assert.equal(run.status, 'failed');
    assert.equal(run.error.code, 'event_backlog');
    const { events } = await smallStream;
    assert.deepEqual(
      events.filter((e) => e.event === 'token').map((e) => e.data.seq as number),
      Array.from({ length: 60 }, (_, i) => i),
    );
    assert.deepEqual(events.at(-1)?.data, { status: 'completed' });
    await api.waitForIdle();
  });
});
