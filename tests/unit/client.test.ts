import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AgentdError, createClient, type RunEvent } from '../../src/client/index.js';
import { retryAfterOf } from '../../src/client/errors.js';
import { DEFAULT_RETRY_POLICY, isRetryable, retryDelayMs } from '../../src/client/retry.js';
import { SseParser } from '../../src/client/sse-parser.js';
import { newIdempotencyKey } from '../../src/client/transport.js';

/** One scripted answer of the fake agentd: a Response, or a thrown network error. */
type Answer = Response | Error | ((request: Request) => Response | Error);

interface Recorded {
  readonly method: string;
  readonly path: string;
  readonly headers: Headers;
  readonly body: string;
}

/** A fetch that answers from a script, in order, and records every request. */
function fakeFetch(answers: Answer[]): { fetch: typeof fetch; requests: Recorded[]; left: () => number } {
  const requests: Recorded[] = [];
  const fetchImpl = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const request = new Request(input, init);
    const url = new URL(request.url);
    requests.push({ method: request.method, path: url.pathname + url.search, headers: request.headers, body: await request.text() });
    const next = answers.shift();
    if (next === undefined) throw new Error(`no answer scripted for ${request.method} ${url.pathname}`);
    const answer = typeof next === 'function' ? next(request) : next;
    if (answer instanceof Error) throw answer;
    return answer;
  };
  return { fetch: fetchImpl as typeof fetch, requests, left: () => answers.length };
}

const frame = (id: string, type: string, data: unknown) => `id: ${id}\nevent: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
const token = (ms: number, seq: number) => frame(`${ms}-0`, 'token', { seq, text: 'x' });
const end = (ms: number, status = 'completed') => frame(`${ms}-0`, 'end', { status });

/** An event-stream answer whose body sends `chunks`, then ends: closed cleanly, cut (an error), or never. */
function stream(chunks: string[], then: 'close' | 'cut' | 'hang' = 'close'): Response {
  const encoder = new TextEncoder();
  const left = [...chunks];
  // Chunk by chunk as read: an error on a stream drops what it holds unread, as a cut connection does.
  const body = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        const chunk = left.shift();
        if (chunk !== undefined) controller.enqueue(encoder.encode(chunk));
        else if (then === 'close') controller.close();
        else if (then === 'cut') controller.error(new TypeError('terminated'));
        else return new Promise(() => undefined);
      },
    },
    { highWaterMark: 0 },
  );
  return new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream' } });
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });
const errorAnswer = (status: number, code: string, headers: Record<string, string> = {}) =>
  json(status, { error: { code, message: `${code} happened.` } }, headers);

const FAST = { initialDelayMs: 1, maxDelayMs: 2 };
const RUN = '00000000-0000-4000-8000-000000000001';

function clientWith(answers: Answer[], retry: Partial<typeof DEFAULT_RETRY_POLICY> = FAST) {
  const fake = fakeFetch(answers);
  return { ...fake, client: createClient({ url: 'http://agentd.test/', apiKey: 'key', adminToken: 'admin', fetch: fake.fetch, retry }) };
}

async function collect(events: AsyncIterable<RunEvent>): Promise<RunEvent[]> {
  const all: RunEvent[] = [];
  for await (const event of events) all.push(event);
  return all;
}

const lastEventIds = (requests: readonly Recorded[]) => requests.map((r) => r.headers.get('last-event-id'));

describe('SseParser', () => {
  const parse = (...chunks: string[]) => {
    const parser = new SseParser();
    return chunks.flatMap((chunk) => parser.push(chunk));
  };

  it('reads frames whose lines end in LF, CRLF or CR, also when a chunk splits a CRLF', () => {
    const expected = [{ id: '1-0', event: 'token', data: '{}' }];
    assert.deepEqual(parse('id: 1-0\nevent: token\ndata: {}\n\n'), expected);
    assert.deepEqual(parse('id: 1-0\r\nevent: token\r\ndata: {}\r\n\r\n'), expected);
    assert.deepEqual(parse('id: 1-0\revent: token\rdata: {}\r\r'), expected);
    assert.deepEqual(parse('id: 1-0\r', '\nevent: tok', 'en\r\ndata: {}\r', '\n\r', '\n'), expected);
  });

  it('joins data lines, drops one space after the colon, skips comments, unknown fields and frames without data', () => {
    const frames = parse(': ping\n\n', 'retry: 10\nfoo: bar\nid: 2-0\n\n', 'data:  two spaces\ndata\ndata: last\n\n');
    assert.deepEqual(frames, [{ id: null, event: 'message', data: ' two spaces\n\nlast' }]);
  });

  it('keeps nothing of a frame cut off before its blank line', () => {
    const parser = new SseParser();
    assert.deepEqual(parser.push('id: 9-0\nevent: end\ndata: {"status":"completed"}\n'), []);
  });
});

describe('retry policy', () => {
  it('waits a jittered, doubling, capped backoff, or what Retry-After says', () => {
    const policy = { ...DEFAULT_RETRY_POLICY, initialDelayMs: 100, maxDelayMs: 1000 };
    assert.equal(
      retryDelayMs(policy, 1, null, () => 0),
      50,
    );
    assert.equal(
      retryDelayMs(policy, 1, null, () => 1),
      100,
    );
    assert.equal(
      retryDelayMs(policy, 3, null, () => 1),
      400,
    );
    assert.equal(
      retryDelayMs(policy, 40, null, () => 0.5),
      750,
    );
    assert.equal(
      retryDelayMs(policy, 2, 3000, () => 0),
      3000,
    );
  });

  it('retries 408, 429 (not the account or session limit) and 5xx; a request that is not idempotent only 429 and 503', () => {
    const error = (status: number | null, code = 'x') => new AgentdError(status === null ? 'connection_failed' : code, 'm', status);
    const idempotent = [408, 429, 500, 502, 503, 504].map((s) => isRetryable(error(s), true));
    assert.deepEqual(idempotent, [true, true, true, true, true, true]);
    assert.deepEqual(
      [400, 401, 404, 409, 422].map((s) => isRetryable(error(s), true)),
      [false, false, false, false, false],
    );
    assert.equal(isRetryable(error(429, 'account_concurrency_limit'), true), false);
    assert.equal(isRetryable(error(429, 'session_concurrency_limit'), true), false);
    assert.equal(isRetryable(error(null), true), true);
    assert.deepEqual(
      [null, 500, 502, 503, 429].map((s) => isRetryable(error(s), false)),
      [false, false, false, true, true],
    );
  });

  it('reads Retry-After as seconds or as an HTTP date', () => {
    const at = (value: string) =>
      retryAfterOf(new Response(null, { headers: { 'retry-after': value } }), Date.parse('2030-01-01T00:00:00Z'));
    assert.equal(at('3'), 3000);
    assert.equal(at('Tue, 01 Jan 2030 00:00:05 GMT'), 5000);
    assert.equal(at('soon'), null);
  });
});

describe('client requests', () => {
  it('sends the key, JSON and one Idempotency-Key for a create and its retries', async () => {
    const run = { id: RUN, status: 'running' };
    const { client, requests } = clientWith([new TypeError('fetch failed'), errorAnswer(502, 'bad_gateway'), json(202, run)]);
    assert.deepEqual(await client.createRun({ agent: 'echo', input: 'hi' }), run);
    assert.equal(requests.length, 3);
    const keys = new Set(requests.map((r) => r.headers.get('idempotency-key')));
    assert.equal(keys.size, 1);
    assert.match([...keys][0] ?? '', /^[0-9a-f-]{36}$/);
    assert.deepEqual(
      requests.map((r) => [r.method, r.path, r.headers.get('authorization'), r.body]),
      Array(3).fill(['POST', '/v1/runs', 'Bearer key', '{"agent":"echo","input":"hi"}']),
    );
  });

  it('makes Idempotency-Keys where crypto.randomUUID is missing (a browser page over http)', () => {
    const own = Object.getOwnPropertyDescriptor(crypto, 'randomUUID');
    Object.defineProperty(crypto, 'randomUUID', { value: undefined, configurable: true });
    try {
      const keys = new Set(Array.from({ length: 100 }, () => newIdempotencyKey()));
      assert.equal(keys.size, 100);
      for (const key of keys) assert.match(key, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    } finally {
      if (own === undefined) delete (crypto as { randomUUID?: unknown }).randomUUID;
      else Object.defineProperty(crypto, 'randomUUID', own);
    }
    assert.equal(typeof crypto.randomUUID, 'function');
  });

  it('throws a final 4xx at once, with the contract code, message and details', async () => {
    const { client, requests } = clientWith([
      json(429, { error: { code: 'account_concurrency_limit', message: 'Too many.', limit: 1, active: 1 } }, { 'retry-after': '1' }),
    ]);
    const error = await client.createRun({ agent: 'echo' }).catch((e: unknown) => e);
    assert.ok(error instanceof AgentdError);
    assert.deepEqual(
      [error.code, error.message, error.status, error.details, error.retryAfterMs],
      ['account_concurrency_limit', 'Too many.', 429, { limit: 1, active: 1 }, 1000],
    );
    assert.equal(requests.length, 1);
  });

  it('gives up after maxAttempts, with the last error', async () => {
    const { client, requests } = clientWith(
      Array.from({ length: 3 }, () => new TypeError('fetch failed')),
      { ...FAST, maxAttempts: 3 },
    );
    await assert.rejects(client.getRun(RUN), (error: AgentdError) => error.code === 'connection_failed' && error.status === null);
    assert.equal(requests.length, 3);
  });

  it('does not wait for a Retry-After longer than maxRetryAfterMs', async () => {
    const { client, requests } = clientWith([errorAnswer(503, 'draining', { 'retry-after': '120' })]);
    await assert.rejects(client.getRun(RUN), { code: 'draining', retryAfterMs: 120_000 });
    assert.equal(requests.length, 1);
  });

  it('does not retry an account creation after a lost answer (it may have been made)', async () => {
    const { client, requests } = clientWith([new TypeError('fetch failed')]);
    await assert.rejects(client.admin.createAccount({ name: 'a', tier: 'free' }), { code: 'connection_failed' });
    assert.equal(requests[0]?.headers.get('authorization'), 'Bearer admin');
    assert.equal(requests.length, 1);
  });

  it('says which credential is missing, before sending anything', async () => {
    const fake = fakeFetch([]);
    const client = createClient({ url: 'http://agentd.test', fetch: fake.fetch });
    await assert.rejects(client.getRun(RUN), { code: 'missing_credentials' });
    await assert.rejects(client.admin.capacity(), { code: 'missing_credentials' });
    assert.equal(fake.requests.length, 0);
  });

  it('pages through runs with the filters and next_cursor', async () => {
    const run = (n: number) => ({ id: `r${n}` });
    const { client, requests } = clientWith([
      json(200, { runs: [run(1), run(2)], next_cursor: 'c1' }),
      json(200, { runs: [run(3)], next_cursor: null }),
    ]);
    const ids: string[] = [];
    for await (const r of client.listRuns({ status: 'completed', agent: 'echo', limit: 2 })) ids.push(r.id);
    assert.deepEqual(ids, ['r1', 'r2', 'r3']);
    assert.deepEqual(
      requests.map((r) => r.path),
      ['/v1/runs?status=completed&agent=echo&limit=2', '/v1/runs?status=completed&agent=echo&limit=2&cursor=c1'],
    );
  });

  it('waitForRun(request) falls back to POST /v1/runs (same key) and the events end where /v1/runs/wait is 404', async () => {
    const running = { id: RUN, status: 'running' };
    const done = { id: RUN, status: 'completed', output: 'hi' };
    const { client, requests } = clientWith([
      errorAnswer(404, 'not_found'),
      json(202, running),
      json(200, running),
      stream([token(1, 0), end(2)]),
      json(200, done),
    ]);
    assert.deepEqual(await client.waitForRun({ agent: 'echo', input: 'hi' }), done);
    assert.deepEqual(
      requests.map((r) => `${r.method} ${r.path}`),
      ['POST /v1/runs/wait', 'POST /v1/runs', `GET /v1/runs/${RUN}`, `GET /v1/runs/${RUN}/events`, `GET /v1/runs/${RUN}`],
    );
    assert.equal(requests[0]?.headers.get('idempotency-key'), requests[1]?.headers.get('idempotency-key'));
  });

  it('waitForRun(request) answers with what POST /v1/runs/wait answers', async () => {
    const done = { id: RUN, status: 'failed', error: { code: 'agent_error', message: 'boom' } };
    const { client, requests } = clientWith([json(200, done)]);
    assert.deepEqual(await client.waitForRun({ agent: 'echo' }), done);
    assert.equal(requests.length, 1);
  });
});

describe('events: exactly once, always the end', () => {
  it('resumes after a cut with Last-Event-ID of the last event handed out, skipping what it handed out already', async () => {
    const { client, requests } = clientWith([
      stream([token(1, 0), token(2, 1)], 'cut'),
      new TypeError('fetch failed'),
      // A server that sends an event again must not make the caller see it twice.
      stream([token(2, 1), token(3, 2)], 'close'),
      stream([token(4, 3), end(5)]),
    ]);
    const events = client.events(RUN);
    const seen = await collect(events);
    assert.deepEqual(
      seen.map((e) => e.id),
      ['1-0', '2-0', '3-0', '4-0', '5-0'],
    );
    assert.deepEqual(lastEventIds(requests), [null, '2-0', '2-0', '3-0']);
    assert.deepEqual([events.lastEventId, events.ended], ['5-0', true]);
  });

  it('never resumes from an event it read but did not hand out: an `end` cut off mid-frame comes again', async () => {
    const { client, requests } = clientWith([
      stream([token(1, 0), 'id: 2-0\nevent: end\ndata: {"status":"completed"}\n'], 'cut'),
      stream([end(2)]),
    ]);
    const seen = await collect(client.events(RUN));
    assert.deepEqual(
      seen.map((e) => `${e.id} ${e.type}`),
      ['1-0 token', '2-0 end'],
    );
    assert.deepEqual(lastEventIds(requests), [null, '1-0']);
  });

  it('compares ids as number pairs, not as text', async () => {
    const { client } = clientWith([
      stream([
        frame('999-9', 'token', { text: 'a' }),
        frame('1000-0', 'token', { text: 'b' }),
        frame('999-10', 'token', { text: 'old' }),
        end(1001),
      ]),
    ]);
    const seen = await collect(client.events(RUN, { after: '999-2' }));
    assert.deepEqual(
      seen.map((e) => e.id),
      ['999-9', '1000-0', '1001-0'],
    );
  });

  it('ends without an event on 204 at the caller’s `after` (it had the end)', async () => {
    const { client, requests } = clientWith([new Response(null, { status: 204 })]);
    const events = client.events(RUN, { after: '5-0' });
    assert.deepEqual(await collect(events), []);
    assert.deepEqual(lastEventIds(requests), ['5-0']);
    assert.deepEqual([events.lastEventId, events.ended], ['5-0', false]);
  });

  it('on a 204 after events it handed out but no end, reads the run again and delivers the end it would have hidden', async () => {
    const { client, requests } = clientWith([
      stream([token(1, 0), token(3, 1)], 'cut'),
      new Response(null, { status: 204 }),
      // The run's end lies before event 3-0 (the server lost 3-0 after sending it and recovered).
      stream([token(1, 0), end(2, 'interrupted')]),
    ]);
    const seen = await collect(client.events(RUN));
    assert.deepEqual(
      seen.map((e) => `${e.id} ${e.type}`),
      ['1-0 token', '3-0 token', '2-0 end'],
    );
    assert.deepEqual(lastEventIds(requests), [null, '3-0', null]);
  });

  it('retries 5xx and 429 honouring Retry-After, and throws any other 4xx at once', async () => {
    const { client, requests } = clientWith([
      errorAnswer(503, 'dependency_unavailable', { 'retry-after': '0' }),
      errorAnswer(429, 'listener_limit', { 'retry-after': '0' }),
      errorAnswer(500, 'internal'),
      stream([end(1)]),
    ]);
    assert.equal((await collect(client.events(RUN))).length, 1);
    assert.equal(requests.length, 4);

    const notFound = clientWith([errorAnswer(404, 'not_found')]);
    await assert.rejects(collect(notFound.client.events(RUN)), { code: 'not_found', status: 404 });
    assert.equal(notFound.requests.length, 1);
  });

  it('gives up after maxAttempts failures in a row, counting again after each event', async () => {
    const cut = () => new TypeError('fetch failed');
    const { client, requests } = clientWith([stream([token(1, 0)], 'cut'), cut(), stream([token(2, 1)], 'cut'), cut(), cut()], {
      ...FAST,
      maxAttempts: 3,
    });
    const seen: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const event of client.events(RUN)) seen.push(event.id);
      })(),
      { code: 'connection_failed' },
    );
    assert.deepEqual(seen, ['1-0', '2-0']);
    assert.equal(requests.length, 5);
  });

  it('drops a connection that has gone silent and resumes', async () => {
    const { client, requests } = clientWith([stream([token(1, 0)], 'hang'), stream([end(2)])]);
    const seen = await collect(client.events(RUN, { idleTimeoutMs: 50 }));
    assert.deepEqual(
      seen.map((e) => e.id),
      ['1-0', '2-0'],
    );
    assert.deepEqual(lastEventIds(requests), [null, '1-0']);
  });

  it('does not take a caller slow with an event for a silent connection', async () => {
    const { client, requests } = clientWith([stream([token(1, 0), end(2)])]);
    const seen: string[] = [];
    for await (const event of client.events(RUN, { idleTimeoutMs: 20 })) {
      seen.push(event.id);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.deepEqual(seen, ['1-0', '2-0']);
    assert.equal(requests.length, 1);
  });

  it('stops when its signal aborts, with the signal’s reason, and when the caller breaks out', async () => {
    const controller = new AbortController();
    const { client } = clientWith([stream([token(1, 0)], 'hang')]);
    const reason = new Error('enough');
    await assert.rejects(
      (async () => {
        for await (const event of client.events(RUN, { signal: controller.signal })) {
          assert.equal(event.id, '1-0');
          controller.abort(reason);
        }
      })(),
      (error) => error === reason,
    );

    let cancelled = false;
    const body = new ReadableStream<Uint8Array>({
      start: (c) => c.enqueue(new TextEncoder().encode(token(1, 0))),
      cancel: () => void (cancelled = true),
    });
    const broken = clientWith([new Response(body, { headers: { 'content-type': 'text/event-stream' } })]);
    for await (const event of broken.client.events(RUN)) {
      assert.equal(event.id, '1-0');
      break;
    }
    assert.equal(cancelled, true);
  });

  it('refuses an answer that is not an event stream, and events without ids', async () => {
    const html = clientWith([new Response('<html>', { status: 200, headers: { 'content-type': 'text/html' } })]);
    await assert.rejects(collect(html.client.events(RUN)), { code: 'invalid_response' });
    const noId = clientWith([stream(['event: token\ndata: {}\n\n'])]);
    await assert.rejects(collect(noId.client.events(RUN)), { code: 'invalid_response' });
    assert.throws(() => html.client.events(RUN, { after: 'last' }), TypeError);
  });
});
