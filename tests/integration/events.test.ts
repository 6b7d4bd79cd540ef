import assert from 'node:assert/strict';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { RedisKeys } from '../../src/streaming/redis/redis-keys.js';
import { startAgentd, type Storage, type TestAgentd } from '../helpers/agentd.js';
import { cleanupPrefix, openTestClient, redisUrl, type TestRedisClient, uniquePrefix } from '../helpers/redis.js';
import { assertIncreasingIds, readSse, type SseEvent } from '../helpers/sse.js';
import { waitFor } from '../helpers/wait-for.js';

interface Setup {
  readonly name: string;
  readonly storage: Storage;
  readonly redis: boolean;
}

const SETUPS: readonly Setup[] = [
  { name: 'the embedded default (PGlite, in-process events)', storage: 'pglite', redis: false },
  { name: 'Postgres with in-process events', storage: 'postgres', redis: false },
  { name: 'Postgres and Redis', storage: 'postgres', redis: true },
];

const tokens = (events: readonly SseEvent[]) => events.filter((e) => e.event === 'token').map((e) => e.data.seq as number);
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

for (const setup of SETUPS) {
  describe(`events over SSE on ${setup.name}`, () => {
    let agentd: TestAgentd;
    let key: string;
    let otherKey: string;
    const prefix = uniquePrefix();

    before(async () => {
      agentd = await startAgentd(setup.storage, {
        TIER_LIMITS: 'bulk:1000',
        SSE_HEARTBEAT_MS: '200',
        SSE_MAX_BUFFER_BYTES: String(4 * 1024 * 1024),
        ...(setup.redis ? { REDIS_URL: redisUrl(), REDIS_KEY_PREFIX: prefix } : {}),
      });
      key = (await agentd.createAccount('bulk')).apiKey;
      otherKey = (await agentd.createAccount('bulk')).apiKey;
    });
    after(async () => {
      await agentd.waitForIdle();
      await agentd.close();
      if (setup.redis) await cleanupPrefix(prefix);
    });

    const start = async (body: unknown) => {
      const res = await agentd.as(key, 'POST', '/v1/runs', { body });
      assert.equal(res.status, 202, res.text);
      return res.body.id as string;
    };
    const eventsUrl = (id: string, query = '') => `${agentd.url}/v1/runs/${id}/events${query}`;

    it('sends a late client every event from the first, then live, then `end`, and closes', async () => {
      const id = await start({ agent: 'simulate', input: { events: 30, interval_ms: 10 } });
      await waitFor(async () => (await agentd.as(key, 'GET', `/v1/runs/${id}`)).body.status === 'running');
      const result = await readSse(eventsUrl(id), { token: key });
      assert.equal(result.status, 200);
      assert.match(result.headers.get('content-type') ?? '', /^text\/event-stream/);
      assert.equal(result.headers.get('cache-control'), 'no-cache');
      assert.equal(result.headers.get('x-accel-buffering'), 'no');
      assert.ok(result.closedByServer);
      assertIncreasingIds(result.events);
      assert.deepEqual(result.events[0], { id: result.events[0]?.id, event: 'status', data: { status: 'running' } });
      assert.deepEqual(tokens(result.events), range(30));
      assert.deepEqual(result.events.at(-1)?.event, 'end');
      assert.deepEqual(result.events.at(-1)?.data, { status: 'completed' });
    });

    it('resumes strictly after Last-Event-ID or ?after (which wins), with no gap and no duplicate', async () => {
      const id = await start({ agent: 'simulate', input: { events: 20, interval_ms: 5 } });
      const full = await readSse(eventsUrl(id), { token: key });
      const all = assertIncreasingIds(full.events);
      const cut = 7;
      const byHeader = await readSse(eventsUrl(id), { token: key, headers: { 'last-event-id': all[cut] as string } });
      assert.deepEqual(assertIncreasingIds(byHeader.events), all.slice(cut + 1));
      const byQuery = await readSse(eventsUrl(id, `?after=${all[cut + 3]}`), {
        token: key,
        headers: { 'last-event-id': all[cut] as string },
      });
      assert.deepEqual(
        byQuery.events.map((e) => e.id),
        all.slice(cut + 4),
      );
    });

    it('resumes mid-run: the first part read, a disconnect, the rest after Last-Event-ID', async () => {
      const id = await start({ agent: 'simulate', input: { events: 40, interval_ms: 10 } });
      const first = await readSse(eventsUrl(id), { token: key, stopWhen: (events) => tokens(events).length >= 10 });
      assert.ok(!first.closedByServer);
      const rest = await readSse(eventsUrl(id), { token: key, headers: { 'last-event-id': first.events.at(-1)?.id as string } });
      const joined = [...first.events, ...rest.events];
      assertIncreasingIds(joined);
      assert.deepEqual(tokens(joined), range(40));
      assert.equal(joined.at(-1)?.event, 'end');
    });

    it('catches up a finished run much larger than SSE_MAX_BUFFER_BYTES, paced by the client', async () => {
      const id = await start({ agent: 'simulate', input: { events: 300, interval_ms: 0, payload_bytes: 30_000 } });
      await agentd.waitForEnd(key, id);
      const result = await readSse(eventsUrl(id), { token: key });
      assert.deepEqual(tokens(result.events), range(300));
      assert.equal(result.events.at(-1)?.event, 'end');
    });

    it('resumes from any id, not only one of its events', async () => {
      const id = await start({ agent: 'simulate', input: { events: 10, interval_ms: 5 } });
      const full = await readSse(eventsUrl(id), { token: key });
      const all = full.events.map((e) => e.id);
      const fromZero = await readSse(eventsUrl(id, '?after=0-0'), { token: key });
      assert.deepEqual(
        fromZero.events.map((e) => e.id),
        all,
      );
      const [ms, seq] = (all[4] as string).split('-').map(Number) as [number, number];
      const between = await readSse(eventsUrl(id, `?after=${ms}-${seq + 1}`), { token: key });
      assert.ok(between.events.every((e) => all.indexOf(e.id) > 4));
      assert.deepEqual(
        between.events.map((e) => e.id),
        all.slice(all.length - between.events.length),
      );
      const beyond = await fetch(eventsUrl(id, '?after=99999999999999-0'), { headers: { authorization: `Bearer ${key}` } });
      assert.equal(beyond.status, 204);
    });

    it('follows a running run resumed after any of its events, and ends with the run', async () => {
      const id = await start({ agent: 'simulate', input: { events: 50, interval_ms: 20 } });
      await waitFor(async () => (await agentd.as(key, 'GET', `/v1/runs/${id}`)).body.status === 'running');
      const result = await readSse(eventsUrl(id, '?after=99999999999999-0'), { token: key, timeoutMs: 30_000 });
      assert.equal(result.status, 200);
      assert.deepEqual(result.events, [], 'nothing lies after the resume point');
      assert.equal(result.closedByServer, true, 'closed when the run ended');
      assert.equal((await agentd.as(key, 'GET', `/v1/runs/${id}`)).body.status, 'completed');
    });

    it('answers 204 when resuming after the end', async () => {
      const id = await start({ agent: 'echo', input: 'x' });
      const full = await readSse(eventsUrl(id), { token: key });
      const end = full.events.at(-1);
      assert.equal(end?.event, 'end');
      const res = await fetch(eventsUrl(id), { headers: { authorization: `Bearer ${key}`, 'last-event-id': end?.id as string } });
      assert.equal(res.status, 204);
      assert.equal(await res.text(), '');
    });

    it('reports a failed run with `error` before `end`', async () => {
      const id = await start({ agent: 'simulate', input: { events: 5, interval_ms: 1, fail_at: 3 } });
      const { events } = await readSse(eventsUrl(id), { token: key });
      assert.deepEqual(tokens(events), [0, 1, 2]);
      assert.deepEqual(
        events.slice(-2).map((e) => [e.event, e.data.code ?? e.data.status]),
        [
          ['error', 'agent_error'],
          ['end', 'failed'],
        ],
      );
      assert.equal(events.at(-1)?.data.error.code, 'agent_error');
    });

    it('refuses a malformed resume id with 400, and unknown or foreign runs with 404 JSON', async () => {
      const id = await start({ agent: 'echo' });
      for (const bad of ['abc', '12', '1-2-3']) {
        const res = await readSse(eventsUrl(id, `?after=${bad}`), { token: key });
        assert.equal(res.status, 400);
        assert.equal(res.body.error.code, 'invalid_request');
        assert.equal(res.body.error.field, 'after');
      }
      const header = await readSse(eventsUrl(id), { token: key, headers: { 'last-event-id': 'nope' } });
      assert.equal(header.body.error.field, 'Last-Event-ID');
      const foreign = await readSse(eventsUrl(id), { token: otherKey });
      assert.equal(foreign.status, 404);
      assert.equal(foreign.body.error.code, 'not_found');
      const unknown = await readSse(eventsUrl('00000000-0000-4000-8000-000000000000'), { token: key });
      assert.equal(unknown.status, 404);
    });

    it('sends `: ping` while idle', async () => {
      const id = await start({ agent: 'simulate', input: { events: 2, interval_ms: 700 } });
      const result = await readSse(eventsUrl(id), { token: key });
      assert.ok(result.pings >= 1, `pings: ${result.pings}`);
      assert.deepEqual(tokens(result.events), [0, 1]);
    });

    it('streams POST /v1/runs/stream with X-Run-Id; a disconnect does not cancel unless asked', async () => {
      const body = { agent: 'simulate', input: { events: 50, interval_ms: 20 } };
      const full = await readSse(`${agentd.url}/v1/runs/stream`, { token: key, method: 'POST', body: { agent: 'echo', input: 'hi' } });
      assert.equal(full.status, 200);
      const runId = full.headers.get('x-run-id') as string;
      assert.match(runId, /^[0-9a-f-]{36}$/);
      assert.deepEqual(full.events.find((e) => e.event === 'message')?.data, { role: 'assistant', content: 'hi' });
      assert.equal(full.events.at(-1)?.event, 'end');

      const kept = await readSse(`${agentd.url}/v1/runs/stream`, {
        token: key,
        method: 'POST',
        body,
        stopWhen: (e) => tokens(e).length >= 2,
      });
      const keptId = kept.headers.get('x-run-id') as string;
      const cancelled = await readSse(`${agentd.url}/v1/runs/stream?cancel_on_disconnect=true`, {
        token: key,
        method: 'POST',
        body,
        stopWhen: (e) => tokens(e).length >= 2,
      });
      const cancelledId = cancelled.headers.get('x-run-id') as string;
      assert.equal((await agentd.waitForEnd(key, cancelledId)).status, 'cancelled');
      assert.equal((await agentd.waitForEnd(key, keptId)).status, 'completed');
    });

    it('cuts off a listener that falls behind SSE_MAX_BUFFER_BYTES, without slowing the run or other listeners', async () => {
      const id = await start({ agent: 'simulate', input: { events: 400, interval_ms: 1, payload_bytes: 60_000 } });
      // A client that stops reading: the server must give up on it rather than buffer 24 MB for it.
      const stalled = await new Promise<IncomingMessage>((resolve, reject) => {
        const req = httpRequest(eventsUrl(id), { headers: { authorization: `Bearer ${key}` } }, (res) => {
          res.pause();
          resolve(res);
        });
        req.on('error', reject);
        req.end();
      });
      const reader = await readSse(eventsUrl(id), { token: key });
      assert.deepEqual(tokens(reader.events), range(400), 'a reading listener gets everything');
      assert.equal((await agentd.waitForEnd(key, id)).status, 'completed');
      await waitFor(async () => (await agentd.admin('GET', '/v1/admin/capacity')).body.sse.listeners === 0);
      // Now read what the stalled client was sent before the server cut it off.
      let text = '';
      stalled.setEncoding('utf8');
      stalled.on('data', (chunk: string) => (text += chunk));
      await new Promise<void>((resolve) => {
        stalled.on('close', resolve);
        stalled.on('error', () => resolve());
        stalled.resume();
      });
      const received = (text.match(/^event: token$/gm) ?? []).length;
      assert.ok(received < 400, `the stalled listener was cut off after ${received} events`);
      assert.doesNotMatch(text, /^event: end$/m);
    });

    it('frees everything a listener held when it disconnects', async () => {
      const id = await start({ agent: 'simulate', input: { events: 1000, interval_ms: 10 } });
      await Promise.all(range(20).map(() => readSse(eventsUrl(id), { token: key, stopWhen: (e) => tokens(e).length >= 3 })));
      await agentd.as(key, 'POST', `/v1/runs/${id}/cancel`);
      await agentd.waitForEnd(key, id);
      // The suite's after() also waits for every limiter at zero.
    });
  });
}

describe('catch-up after the stream TTL (Postgres and Redis)', () => {
  let agentd: TestAgentd;
  let redis: TestRedisClient;
  const prefix = uniquePrefix();
  before(async () => {
    agentd = await startAgentd('postgres', { REDIS_URL: redisUrl(), REDIS_KEY_PREFIX: prefix, STREAM_TTL_SECONDS: '1' });
    redis = await openTestClient();
  });
  after(async () => {
    await agentd.waitForIdle();
    await agentd.close();
    await redis.quit();
    await cleanupPrefix(prefix);
  });

  it('serves every event with the same ids from the archive once the Redis stream expired', async () => {
    const key = (await agentd.createAccount('pro')).apiKey;
    const created = await agentd.as(key, 'POST', '/v1/runs', { body: { agent: 'simulate', input: { events: 25, interval_ms: 2 } } });
    const id = created.body.id as string;
    const live = await readSse(`${agentd.url}/v1/runs/${id}/events`, { token: key });
    assert.equal(live.events.at(-1)?.event, 'end');
    await waitFor(async () => (await redis.exists(new RedisKeys(prefix).runStream(id))) === 0, { what: 'the stream to expire' });
    const replay = await readSse(`${agentd.url}/v1/runs/${id}/events`, { token: key });
    assert.deepEqual(replay.events, live.events);
    const resumed = await readSse(`${agentd.url}/v1/runs/${id}/events?after=${live.events[9]?.id}`, { token: key });
    assert.deepEqual(resumed.events, live.events.slice(10));
  });
});
