import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { AgentdError, type AgentdClient, createClient, isBuiltInEvent, type RunEvent } from '../../src/client/index.js';
import { startAgentd, type TestAgentd } from '../helpers/agentd.js';
import { cleanupPrefix, redisUrl, uniquePrefix } from '../helpers/redis.js';
import { assertIncreasingIds, readSse } from '../helpers/sse.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { waitFor } from '../helpers/wait-for.js';

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const tokens = (events: readonly RunEvent[]) =>
  events.flatMap((e) => (isBuiltInEvent(e) && e.type === 'token' ? [e.data.seq as number] : []));
const ids = (events: readonly RunEvent[]) => events.map((e) => e.id);

async function collect(events: AsyncIterable<RunEvent>): Promise<RunEvent[]> {
  const all: RunEvent[] = [];
  for await (const event of events) all.push(event);
  return all;
}

/** Every event once, ids strictly increasing, one `end` and last. */
function assertExactlyOnce(events: readonly RunEvent[], endStatus: string): void {
  assertIncreasingIds(events.map((e) => ({ id: e.id, event: e.type, data: e.data })));
  assert.equal(new Set(ids(events)).size, events.length, 'no event twice');
  assert.deepEqual(
    events.filter((e) => e.type === 'end').map((e) => e.data),
    [{ status: endStatus }],
  );
  assert.equal(events.at(-1)?.type, 'end');
}

interface Seen {
  readonly method: string;
  readonly path: string;
  readonly lastEventId: string | null;
  readonly idempotencyKey: string | null;
  /** The answer's status; null when the request failed without one. */
  status: number | null;
}

/** The real fetch, with every request and its answer's status recorded, and a hook that may replace an answer. */
function watchedFetch(intercept?: (seen: Seen, send: () => Promise<Response>) => Promise<Response> | undefined) {
  const seen: Seen[] = [];
  const fetchImpl = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const request = new Request(input, init);
    const url = new URL(request.url);
    const entry: Seen = {
      method: request.method,
      path: url.pathname,
      lastEventId: request.headers.get('last-event-id'),
      idempotencyKey: request.headers.get('idempotency-key'),
      status: null,
    };
    seen.push(entry);
    const send = () => fetch(input, init);
    const response = await (intercept?.(entry, send) ?? send());
    entry.status = response.status;
    return response;
  };
  return { fetch: fetchImpl as typeof fetch, seen };
}

const streamsOf = (seen: readonly Seen[]) => seen.filter((s) => s.path.endsWith('/events'));

describe('agentd/client against a live agentd (Postgres and Redis)', () => {
  let agentd: TestAgentd;
  const prefix = uniquePrefix();

  before(async () => {
    agentd = await startAgentd('postgres', {
      REDIS_URL: redisUrl(),
      REDIS_KEY_PREFIX: prefix,
      TIER_LIMITS: 'bulk:100',
      SSE_HEARTBEAT_MS: '100',
      SSE_MAX_LISTENERS_PER_ACCOUNT: '2',
      MAX_CONCURRENT_AGENT_RUNS: '3',
      RUN_QUEUE_MAX: '0',
    });
  });
  after(async () => {
    await agentd.waitForIdle();
    await agentd.close();
    await cleanupPrefix(prefix);
  });

  /** A client of a new account of its own (listener and run limits are per account). */
  async function newClient(options: { url?: string; fetch?: typeof fetch } = {}): Promise<AgentdClient> {
    const { apiKey } = await agentd.createAccount('bulk');
    return createClient({ url: options.url ?? agentd.url, apiKey, fetch: options.fetch, retry: { initialDelayMs: 50, maxDelayMs: 500 } });
  }

  it('loses no event and repeats none when the connection drops twice mid-run, and ends with the end', async () => {
    const port = Number(new URL(agentd.url).port);
    const proxy: TcpProxy = await startTcpProxy(port);
    try {
      // While the proxy is down the client's reconnects fail; the first failure brings it back.
      const watched = watchedFetch((entry, send) =>
        send().catch((error: unknown) => {
          if (entry.path.endsWith('/events')) proxy.restore();
          throw error;
        }),
      );
      const client = await newClient({ url: `http://${proxy.address}`, fetch: watched.fetch });
      const run = await client.createRun({ agent: 'simulate', input: { events: 60, interval_ms: 20 } });
      const events: RunEvent[] = [];
      const cutAfter: string[] = [];
      for await (const event of client.events(run.id)) {
        events.push(event);
        if (isBuiltInEvent(event) && event.type === 'token' && (event.data.seq === 10 || event.data.seq === 30)) {
          cutAfter.push(event.id);
          proxy.cut();
        }
      }
      assertExactlyOnce(events, 'completed');
      assert.deepEqual(tokens(events), range(60));
      const streams = streamsOf(watched.seen);
      const resumed = streams.filter((s) => s.status === 200).map((s) => s.lastEventId);
      assert.equal(resumed.length, 3, `one stream and two resumes: ${JSON.stringify(streams)}`);
      assert.equal(resumed[0], null);
      // Each resume starts after an event handed out: at or after the one read when the cut came.
      for (const [i, id] of resumed.slice(1).entries()) assert.ok(ids(events).indexOf(id ?? '') >= ids(events).indexOf(cutAfter[i] ?? ''));
      assert.ok(
        streams.some((s) => s.status === null),
        'a reconnect found the proxy down',
      );
    } finally {
      await proxy.close();
    }
  });

  it('drops a connection gone silent (half-open) and resumes', async () => {
    const proxy = await startTcpProxy(Number(new URL(agentd.url).port));
    try {
      const watched = watchedFetch();
      const { apiKey } = await agentd.createAccount('bulk');
      const client = createClient({ url: `http://${proxy.address}`, apiKey, fetch: watched.fetch });
      const run = await client.createRun({ agent: 'simulate', input: { events: 30, interval_ms: 20 } });
      const events: RunEvent[] = [];
      for await (const event of client.events(run.id, { idleTimeoutMs: 500 })) {
        events.push(event);
        if (isBuiltInEvent(event) && event.type === 'token' && event.data.seq === 5) {
          proxy.blackhole();
          proxy.restore(); // new connections pass again; the one open stays silent
        }
      }
      assertExactlyOnce(events, 'completed');
      assert.deepEqual(tokens(events), range(30));
      // A resume may first go out on a kept-alive connection the black hole took too: it goes silent as well, and is dropped.
      const streams = streamsOf(watched.seen);
      assert.ok(streams.length >= 2, JSON.stringify(streams));
      assert.deepEqual(
        streams.filter((s) => s.status === 200).map((s) => s.lastEventId === null),
        [true, false],
      );
    } finally {
      await proxy.close();
    }
  });

  it('resumes after `after` (and lastEventId), with nothing after the end', async () => {
    const client = await newClient();
    const run = await client.createRun({ agent: 'simulate', input: { events: 12, interval_ms: 5 } });
    const first = client.events(run.id);
    const head: RunEvent[] = [];
    for await (const event of first) {
      head.push(event);
      if (head.length === 5) break;
    }
    const tail = await collect(client.events(run.id, { after: first.lastEventId }));
    const all = [...head, ...tail];
    assertExactlyOnce(all, 'completed');
    assert.deepEqual(tokens(all), range(12));

    const fromMiddle = await collect(client.events(run.id, { after: all[7]?.id }));
    assert.deepEqual(ids(fromMiddle), ids(all).slice(8));
    const past = client.events(run.id, { after: all.at(-1)?.id });
    assert.deepEqual(await collect(past), []);
    assert.equal(past.ended, false);
  });

  it('retries 503 capacity_exhausted after its Retry-After until a slot is free', async () => {
    const watched = watchedFetch();
    const client = await newClient({ fetch: watched.fetch });
    const blockers = await Promise.all(
      range(3).map(() => client.createRun({ agent: 'simulate', input: { events: 10, interval_ms: 100 } })),
    );
    const run = await client.createRun({ agent: 'echo', input: 'in the end' });
    const creates = watched.seen.filter((s) => s.method === 'POST');
    assert.ok(
      creates.some((s) => s.status === 503),
      JSON.stringify(creates),
    );
    assert.equal(creates.at(-1)?.status, 202);
    assert.equal(new Set(creates.slice(3).map((s) => s.idempotencyKey)).size, 1, 'one key for the create and its retries');
    assert.equal((await client.waitForRun(run.id)).status, 'completed');
    for (const blocker of blockers) assert.equal((await client.waitForRun(blocker.id)).status, 'completed');
  });

  it('retries 429 listener_limit after its Retry-After, and a 502 from the way there', async () => {
    let injected = false;
    const watched = watchedFetch((entry) => {
      if (injected || entry.method !== 'GET' || entry.path.endsWith('/events')) return undefined;
      injected = true;
      return Promise.resolve(new Response('<html>bad gateway</html>', { status: 502, headers: { 'content-type': 'text/html' } }));
    });
    const { apiKey } = await agentd.createAccount('bulk');
    const client = createClient({ url: agentd.url, apiKey, fetch: watched.fetch, retry: { initialDelayMs: 50 } });
    const run = await client.createRun({ agent: 'simulate', input: { events: 10, interval_ms: 100 } });
    assert.equal((await client.getRun(run.id)).id, run.id);
    // The account's two listeners (SSE_MAX_LISTENERS_PER_ACCOUNT=2) follow the run to its end.
    const listening = [0, 1].map(() => {
      let started = false;
      const done = readSse(`${agentd.url}/v1/runs/${run.id}/events`, { token: apiKey, onEvent: () => (started = true) });
      return { done, started: () => started };
    });
    await waitFor(() => listening.every((l) => l.started()), { what: 'two listeners' });
    const events = await collect(client.events(run.id));
    assertExactlyOnce(events, 'completed');
    assert.deepEqual(tokens(events), range(10));
    const statuses = watched.seen.map((s) => s.status);
    assert.ok(statuses.includes(429), JSON.stringify(watched.seen));
    assert.ok(statuses.includes(502));
    await Promise.all(listening.map((l) => l.done));
  });

  it('returns the same run when a create is retried after its answer was lost', async () => {
    let created: string | undefined;
    const watched = watchedFetch((entry, send) => {
      if (entry.method !== 'POST' || created !== undefined) return undefined;
      return send().then(async (response) => {
        created = ((await response.json()) as { id: string }).id;
        throw new TypeError('fetch failed'); // the answer never reached the client
      });
    });
    const client = await newClient({ fetch: watched.fetch });
    const run = await client.createRun({ agent: 'echo', input: 'once' });
    assert.equal(run.id, created);
    const posts = watched.seen.filter((s) => s.method === 'POST');
    assert.equal(posts.length, 2);
    assert.equal(posts[0]?.idempotencyKey, posts[1]?.idempotencyKey);
    const runs = [];
    for await (const r of client.listRuns()) runs.push(r.id);
    assert.deepEqual(runs, [run.id]);
    await client.waitForRun(run.id);
  });

  it('waits for a run to end, given a request or an id', async () => {
    const client = await newClient();
    const echoed = await client.waitForRun({ agent: 'echo', input: 'waited' });
    assert.equal(echoed.status, 'completed');
    assert.deepEqual(echoed.output, { role: 'assistant', content: 'waited' });
    const run = await client.createRun({ agent: 'simulate', input: { events: 5, interval_ms: 20, fail_at: 3 } });
    const failed = await client.waitForRun(run.id);
    assert.equal(failed.status, 'failed');
    assert.equal(failed.error?.code, 'agent_error');
  });

  it('cancels a run; its events end `cancelled`', async () => {
    const client = await newClient();
    const run = await client.createRun({ agent: 'simulate', input: { events: 10_000, interval_ms: 20 } });
    const events: RunEvent[] = [];
    for await (const event of client.events(run.id)) {
      events.push(event);
      if (isBuiltInEvent(event) && event.type === 'token' && event.data.seq === 2) await client.cancel(run.id);
    }
    assertExactlyOnce(events, 'cancelled');
    assert.deepEqual(await client.cancel(run.id), { id: run.id, status: 'cancelled' });
  });

  it('lists runs page by page, newest first', async () => {
    const client = await newClient();
    const created: string[] = [];
    for (const i of range(5)) created.unshift((await client.createRun({ agent: 'echo', input: i })).id);
    const listed: string[] = [];
    for await (const run of client.listRuns({ limit: 2 })) listed.push(run.id);
    assert.deepEqual(listed, created);
    const pages = [];
    for await (const page of client.listRuns({ limit: 2, agent: 'echo' }).pages()) pages.push(page.runs.length);
    assert.deepEqual(pages, [2, 2, 1]);
    for (const id of created) await client.waitForRun(id);
  });

  it('throws the contract’s errors, typed, without retrying them', async () => {
    const watched = watchedFetch();
    const client = await newClient({ fetch: watched.fetch });
    await assert.rejects(
      client.getRun(randomUUID()),
      (error) => error instanceof AgentdError && error.code === 'not_found' && error.status === 404,
    );
    await assert.rejects(client.createRun({ agent: 'nobody' }), { code: 'unknown_agent', status: 400, details: { field: 'agent' } });
    await assert.rejects(collect(client.events(randomUUID())), { code: 'not_found' });
    assert.equal(watched.seen.length, 3);
    const stranger = createClient({ url: agentd.url, apiKey: 'not-a-key' });
    await assert.rejects(stranger.listAgents(), { code: 'unauthorized', status: 401 });
  });
});
