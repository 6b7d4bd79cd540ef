/**
 * The pure parts of webhooks: which addresses are public, the Standard Webhooks secret and
 * signature, what admission accepts as a webhook URL, the retry schedule and what an attempt
 * comes to, and the dispatcher's bound on deliveries in flight.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AttemptRecord, ClaimedDelivery } from '../../src/db/webhook-repository.js';
import { InvalidRequestError, type RunRecord } from '../../src/domain/index.js';
import { isGlobalAddress } from '../../src/lib/ip-address.js';
import { parseWebhookSecret, signWebhook } from '../../src/lib/standard-webhooks.js';
import { createLogger } from '../../src/observability/logger.js';
import { WebhookDispatcher } from '../../src/runtime/webhook-dispatcher.js';
import { attemptOutcome, retryDelayMs } from '../../src/runtime/webhook-policy.js';
import type { SendResult } from '../../src/runtime/webhook-sender.js';
import { checkWebhookUrl } from '../../src/runtime/webhook-target.js';
import { waitFor } from '../helpers/wait-for.js';

describe('isGlobalAddress', () => {
  const notGlobal = [
    '127.0.0.1',
    '127.255.0.9',
    '10.1.2.3',
    '172.16.0.1',
    '172.31.255.255',
    '192.168.1.1',
    '169.254.169.254',
    '0.0.0.0',
    '100.64.0.1',
    '192.0.2.10',
    '198.18.0.1',
    '224.0.0.1',
    '255.255.255.255',
    '::',
    '::1',
    'fe80::1',
    'fe80::1%eth0',
    'fc00::1',
    'fd12:3456::1',
    'ff02::1',
    '::ffff:127.0.0.1',
    '::ffff:7f00:1',
    '::ffff:10.0.0.1',
    '64:ff9b::a9fe:a9fe',
    '2002:c0a8:101::1',
    '2001:db8::1',
    'localhost',
    'not an address',
  ];
  const global = [
    '8.8.8.8',
    '1.1.1.1',
    '172.32.0.1',
    '100.128.0.1',
    '2606:4700::1111',
    '2a00:1450:4001::200e',
    '::ffff:8.8.8.8',
    '2002:808:808::1',
  ];

  for (const address of notGlobal) it(`refuses ${address}`, () => assert.equal(isGlobalAddress(address), false));
  for (const address of global) it(`accepts ${address}`, () => assert.equal(isGlobalAddress(address), true));
});

describe('Standard Webhooks secret and signature', () => {
  it('signs as the Standard Webhooks reference does (its published test vector)', () => {
    const key = parseWebhookSecret('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
    const signature = signWebhook(key, 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}');
    assert.equal(signature, 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
  });

  it('reads whsec_ as base64 and any other text as its bytes; refuses short keys and bad base64', () => {
    assert.deepEqual(parseWebhookSecret('whsec_' + Buffer.alloc(32, 7).toString('base64')), Buffer.alloc(32, 7));
    assert.deepEqual(parseWebhookSecret('a-raw-secret-of-some-length'), Buffer.from('a-raw-secret-of-some-length'));
    assert.throws(() => parseWebhookSecret('short'), /at least 16 characters/);
    assert.throws(() => parseWebhookSecret('whsec_' + Buffer.alloc(8).toString('base64')), /at least 16 bytes/);
    assert.throws(() => parseWebhookSecret('whsec_not base64!'), /standard base64/);
  });
});

describe('checkWebhookUrl', () => {
  const on = { enabled: true, allowPrivate: false };
  const refusal = (url: string, policy = on) => {
    try {
      checkWebhookUrl(url, policy);
    } catch (error) {
      assert.ok(error instanceof InvalidRequestError);
      assert.deepEqual(error.details, { field: 'webhook' });
      assert.match(error.message, /^webhook: /);
      return error.message;
    }
    return null;
  };

  it('normalises an accepted URL (no fragment) and keeps its query', () => {
    assert.equal(checkWebhookUrl('https://Hooks.Example.com:8443/a/b?token=x#frag', on), 'https://hooks.example.com:8443/a/b?token=x');
    assert.equal(checkWebhookUrl('http://8.8.8.8/hook', on), 'http://8.8.8.8/hook');
  });

  it('refuses every webhook while webhooks are off (no WEBHOOK_SECRET)', () => {
    assert.match(refusal('https://hooks.example.com/', { enabled: false, allowPrivate: true }) ?? '', /WEBHOOK_SECRET/);
  });

  for (const url of ['ftp://hooks.example.com/', 'file:///etc/passwd', 'hooks.example.com/x', 'https://user:pw@hooks.example.com/']) {
    it(`refuses ${url}`, () => assert.notEqual(refusal(url), null));
  }

  for (const url of [
    'http://127.0.0.1:8080/',
    'http://2130706433/', // 127.0.0.1 spelled as a number
    'http://0x7f.1/',
    'http://10.0.0.5/',
    'http://192.168.0.1/',
    'http://169.254.169.254/latest/meta-data/',
    'http://0.0.0.0/',
    'http://[::1]/',
    'http://[::ffff:127.0.0.1]/',
    'http://[fd00::1]/',
    'http://[fe80::1]/',
    'http://localhost:3000/',
    'http://LOCALHOST./',
    'http://api.localhost/',
  ]) {
    it(`refuses the non-public target ${url}, unless WEBHOOK_ALLOW_PRIVATE`, () => {
      assert.match(refusal(url) ?? '', /non-public address/);
      assert.equal(refusal(url, { enabled: true, allowPrivate: true }), null);
    });
  }
});

describe('the retry schedule', () => {
  const schedule = { maxAttempts: 5, maxAgeMs: 3_600_000, retryBaseMs: 1_000 };
  const answered = (status: number, retryAfterMs: number | null = null): SendResult => ({ kind: 'answered', status, retryAfterMs });

  it('doubles from the base, jittered between half and all of it, at most an hour; a longer Retry-After wins', () => {
    assert.equal(retryDelayMs(1, schedule, null, 0), 500);
    assert.equal(retryDelayMs(1, schedule, null, 0.999999), 1_000);
    assert.equal(retryDelayMs(3, schedule, null, 0.5), 3_000);
    assert.equal(retryDelayMs(30, schedule, null, 0), 1_800_000);
    assert.equal(retryDelayMs(1, schedule, 120_000, 0), 120_000);
    assert.equal(retryDelayMs(1, schedule, 10 * 3_600_000, 0), 3_600_000);
  });

  it('2xx delivers; a 4xx other than 408 and 429, or a refused target, fails for good', () => {
    for (const status of [200, 201, 204, 299]) assert.equal(attemptOutcome(answered(status), 1, 0, schedule).state, 'delivered');
    for (const status of [400, 401, 403, 404, 410, 413, 422]) {
      assert.deepEqual(attemptOutcome(answered(status), 1, 0, schedule), {
        state: 'failed',
        lastStatus: status,
        lastError: `the receiver answered ${status}`,
      });
    }
    const refused = attemptOutcome({ kind: 'refused', reason: 'x resolves to 127.0.0.1' }, 1, 0, schedule);
    assert.deepEqual(refused, { state: 'failed', lastStatus: null, lastError: 'refused: x resolves to 127.0.0.1' });
  });

  it('retries 5xx, 408, 429, 3xx and no answer, until the attempts or the time allowed run out', () => {
    for (const result of [
      answered(500),
      answered(503),
      answered(408),
      answered(429),
      answered(301),
      { kind: 'unanswered', reason: 'ECONNREFUSED' } as const,
    ]) {
      const outcome: AttemptRecord = attemptOutcome(result, 2, 0, schedule, 0);
      assert.equal(outcome.state, 'pending', JSON.stringify(result));
      assert.equal(outcome.state === 'pending' && outcome.retryInMs, 1_000);
    }
    assert.deepEqual(attemptOutcome(answered(503), 5, 0, schedule), {
      state: 'failed',
      lastStatus: 503,
      lastError: 'the receiver answered 503; gave up after 5 attempts',
    });
    const late = attemptOutcome(answered(503), 1, 3_599_900, schedule, 0);
    assert.equal(late.state, 'failed');
    assert.match(late.lastError ?? '', /WEBHOOK_MAX_AGE_MS/);
  });
});

describe('WebhookDispatcher', () => {
  const run = (id: string): RunRecord => ({
    id,
    accountId: 'a',
    agent: 'echo',
    status: 'completed',
    sessionId: null,
    input: null,
    model: null,
    metadata: null,
    timeoutMs: 1_000,
    instanceId: 'i',
    createdAt: new Date(0),
    startedAt: new Date(0),
    finishedAt: new Date(1),
    error: null,
    output: undefined,
  });

  it('keeps at most WEBHOOK_CONCURRENCY attempts in flight, signs each, and records each outcome once', async () => {
    const due = Array.from({ length: 7 }, (_, i) => `run-${i}`);
    const claims: number[] = [];
    const recorded: Array<[string, number, string]> = [];
    const deliveries = {
      async claim(_instanceId: string, limit: number): Promise<ClaimedDelivery[]> {
        claims.push(limit);
        return due
          .splice(0, limit)
          .map((id) => ({ id: `msg-${id}`, url: `http://hooks.example.com/${id}`, attempt: 1, ageMs: 0, run: run(id) }));
      },
      async record(runId: string, attempt: number, outcome: AttemptRecord) {
        recorded.push([runId, attempt, outcome.state]);
        return true;
      },
      async releaseClaims() {
        return 0;
      },
    };
    const key = parseWebhookSecret('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
    const open: Array<() => void> = [];
    let maxOpen = 0;
    const dispatcher = new WebhookDispatcher({
      instanceId: 'i',
      settings: { key, allowPrivate: false, timeoutMs: 1_000, concurrency: 3, maxAttempts: 3, maxAgeMs: 60_000, retryBaseMs: 10 },
      deliveries,
      render: (r) => JSON.stringify({ id: r.id }),
      logger: createLogger('error'),
      pollMs: 60_000,
      send: (url, options) => {
        const id = options.headers['webhook-id'] ?? '';
        const timestamp = Number(options.headers['webhook-timestamp']);
        assert.equal(options.headers['webhook-signature'], signWebhook(key, id, timestamp, options.body));
        assert.equal(`msg-${JSON.parse(options.body).id}`, id);
        assert.equal(url.pathname, `/${JSON.parse(options.body).id}`);
        return new Promise((resolve) => {
          open.push(() => resolve({ kind: 'answered', status: 204, retryAfterMs: null }));
          maxOpen = Math.max(maxOpen, open.length);
        });
      },
    });
    await dispatcher.start();
    await dispatcher.tick();
    assert.equal(dispatcher.inFlightCount, 3);
    // As attempts finish, their places are claimed again while more may be due.
    while (recorded.length < 7) {
      await waitFor(() => open.length > 0, { what: 'an attempt in flight' });
      open.shift()?.();
      await waitFor(() => dispatcher.inFlightCount === Math.min(3, 7 - recorded.length) || recorded.length === 7, {
        what: 'places refilled',
      });
    }
    await dispatcher.close();
    assert.equal(maxOpen, 3);
    assert.ok(
      claims.every((limit) => limit >= 1 && limit <= 3),
      JSON.stringify(claims),
    );
    assert.deepEqual(
      recorded.map(([id, attempt, state]) => `${id}/${attempt}/${state}`).sort(),
      Array.from({ length: 7 }, (_, i) => `run-${i}/1/delivered`),
    );
  });
});
