import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Agent, request as httpRequest } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { ADMIN_TOKEN } from '../helpers/agentd.js';
import { request } from '../helpers/http.js';
import { type AgentdProcess, spawnAgentd } from '../helpers/process.js';
import { cleanupPrefix, redisUrl, uniquePrefix } from '../helpers/redis.js';
import { createTestDatabase } from '../helpers/test-database.js';
import { waitFor } from '../helpers/wait-for.js';

/** How long traffic flows: about 1.5 s before the kill and the rest after it. */
const TRAFFIC_MS = 6_000;
const KILL_AFTER_MS = 1_500;
/** The longest any single attempt may wait for its answer. */
const MAX_WAIT_MS = 1_000;
/** An attempt still unanswered after this is cut off and counted as hung (well past MAX_WAIT_MS). */
const CUT_OFF_MS = 5_000;
/** Concurrent clients of each kind. */
const LOOPS_PER_KIND = 3;

interface Attempt {
  readonly ms: number;
  readonly ok: boolean;
  readonly error?: string;
}

/** One HTTP exchange, timed; never waits past CUT_OFF_MS. */
function attempt(
  url: string,
  agent: Agent | false,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string,
): Promise<Attempt> {
  const started = performance.now();
  return new Promise<Attempt>((resolve) => {
    const done = (ok: boolean, error?: string) => resolve({ ms: performance.now() - started, ok, error });
    const req = httpRequest(`${url}${path}`, { method, agent, headers, signal: AbortSignal.timeout(CUT_OFF_MS) });
    req.on('error', (error: NodeJS.ErrnoException) => done(false, error.code ?? error.name));
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      res.on('error', (error: NodeJS.ErrnoException) => done(false, error.code ?? error.name));
      res.on('end', () => done(res.statusCode === 200 || res.statusCode === 202, `status ${res.statusCode} ${text.slice(0, 200)}`));
    });
    req.end(body);
  });
}

type Stat = { requests: number; failedFirst: number; failedRetry: number; maxMs: number; errors: string[] };

/** Each kind of request the traffic sends: fresh connections and keep-alive ones, a GET and a POST. */
const KINDS = {
  'fresh GET /healthz': (url: string, _key: string, agent: Agent | false) =>
    attempt(url, agent, 'GET', '/healthz', { connection: 'close' }),
  'fresh POST /v1/runs': (url: string, key: string, agent: Agent | false, idem: string) =>
    attempt(url, agent, 'POST', '/v1/runs', { ...json(key), connection: 'close', 'idempotency-key': idem }, '{"agent":"echo","input":"x"}'),
  'keep-alive GET /healthz': (url: string, key: string, agent: Agent | false) =>
    attempt(url, agent, 'GET', '/healthz', { authorization: `Bearer ${key}` }),
  'keep-alive POST /v1/runs': (url: string, key: string, agent: Agent | false, idem: string) =>
    attempt(url, agent, 'POST', '/v1/runs', { ...json(key), 'idempotency-key': idem }, '{"agent":"echo","input":"x"}'),
};
type Kind = keyof typeof KINDS;

function json(key: string): Record<string, string> {
  return { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
}

/**
 * LOOPS_PER_KIND clients of each kind send requests for TRAFFIC_MS, `action` (a signal to a
 * worker) running after KILL_AFTER_MS. A failed request is retried once: the contract for a
 * request on a connection a dead worker held (a POST with the same Idempotency-Key starts one run).
 */
async function trafficAcross(url: string, key: string, kinds: readonly Kind[], action: () => void): Promise<Map<string, Stat>> {
  const stats = new Map<string, Stat>();
  const deadline = performance.now() + TRAFFIC_MS;
  const loop = async (kind: Kind) => {
    const stat: Stat = { requests: 0, failedFirst: 0, failedRetry: 0, maxMs: 0, errors: [] };
    stats.set(kind, stat);
    // Several keep-alive connections, so some are on the worker that dies.
    const agent = kind.startsWith('keep-alive') ? new Agent({ keepAlive: true, maxSockets: 1 }) : false;
    try {
      while (performance.now() < deadline) {
        const idem = randomUUID();
        stat.requests += 1;
        const first = await KINDS[kind](url, key, agent, idem);
        stat.maxMs = Math.max(stat.maxMs, first.ms);
        if (first.ok) continue;
        stat.failedFirst += 1;
        stat.errors.push(first.error ?? '');
        const retry = await KINDS[kind](url, key, agent, idem);
        stat.maxMs = Math.max(stat.maxMs, retry.ms);
        if (!retry.ok) {
          stat.failedRetry += 1;
          stat.errors.push(`retry: ${retry.error ?? ''}`);
        }
      }
    } finally {
      if (agent) agent.destroy();
    }
  };
  const loops = kinds.flatMap((kind) => Array.from({ length: LOOPS_PER_KIND }, () => loop(kind)));
  const signalled = new Promise<void>((resolve) =>
    setTimeout(() => {
      action();
      resolve();
    }, KILL_AFTER_MS),
  );
  await Promise.all([...loops, signalled]);
  return stats;
}

describe('WORKERS=2: a worker SIGKILLed under traffic', () => {
  let database: { url: string; drop(): Promise<void> };
  let cluster: AgentdProcess | undefined;
  let key: string;
  const prefix = uniquePrefix();
  const base = `k${process.pid}`;

  before(async () => {
    database = await createTestDatabase();
    cluster = await spawnAgentd({
      DATABASE_URL: database.url,
      REDIS_URL: redisUrl(),
      REDIS_KEY_PREFIX: prefix,
      ADMIN_TOKEN,
      WORKERS: '2',
      INSTANCE_ID: base,
      TIER_LIMITS: 'bulk:10000',
      // Room for every echo run the traffic starts on one worker: capacity_exhausted is not what is tested.
      MAX_CONCURRENT_AGENT_RUNS: '64',
      RUN_QUEUE_MAX: '1000',
    });
    const account = await request(cluster.url, 'POST', '/v1/admin/accounts', { token: ADMIN_TOKEN, body: { name: 'k', tier: 'bulk' } });
    key = account.body.api_key as string;
  });
  after(async () => {
    await cluster?.kill('SIGKILL');
    await database?.drop();
    await cleanupPrefix(prefix);
  });

  /** The instance ids answering fresh connections, until both workers have. */
  const bothWorkersUp = (url: string) => {
    const seen = new Set<string>();
    return waitFor(
      async () => {
        const res = await request(url, 'GET', '/v1/admin/capacity', { token: ADMIN_TOKEN, headers: { connection: 'close' } });
        seen.add(res.body.instance_id as string);
        return seen.size === 2 ? [...seen].sort() : undefined;
      },
      { what: 'both workers answering' },
    );
  };

  it('no request waits more than 1 s; only keep-alive requests on the dead worker fail, and their retry succeeds', async () => {
    const url = cluster?.url ?? '';
    assert.deepEqual(await bothWorkersUp(url), [`${base}/1`, `${base}/2`]);
    const started = cluster?.logs().filter((entry) => entry.message === 'worker started' && entry.slot === 1) ?? [];
    const pid = started.at(-1)?.pid as number;

    const stats = await trafficAcross(url, key, Object.keys(KINDS) as Kind[], () => process.kill(pid, 'SIGKILL'));
    const report = Object.fromEntries(stats);
    console.log('traffic across the SIGKILL:', JSON.stringify(report));
    for (const [kind, stat] of stats) {
      assert.ok(stat.requests > 10, `${kind}: traffic flowed (${stat.requests} requests)`);
      assert.ok(stat.maxMs < MAX_WAIT_MS, `${kind}: the slowest attempt took ${Math.round(stat.maxMs)} ms`);
      assert.equal(stat.failedRetry, 0, `${kind}: every retry succeeded (${stat.errors.join(', ')})`);
      // Only a request the dead worker was already serving can fail: one per loop at most, with a reset.
      assert.ok(stat.failedFirst <= LOOPS_PER_KIND, `${kind}: ${stat.failedFirst} failed (${stat.errors.join(', ')})`);
      for (const error of stat.errors) assert.match(error, /^(ECONNRESET|EPIPE)$/, `${kind}: failed with a reset, not an answer`);
    }
    assert.ok(
      cluster?.logs().some((entry) => entry.message === 'worker exited unexpectedly; restarting it' && entry.pid === pid),
      'the primary saw the worker die',
    );
    // A replacement comes up in slot 1 and takes connections again.
    assert.deepEqual(await bothWorkersUp(url), [`${base}/1`, `${base}/2`]);
  });

  it('a worker SIGTERMed under traffic drains: no request on a fresh connection is reset or waits 1 s; new runs there get 503 draining', async () => {
    const url = cluster?.url ?? '';
    assert.deepEqual(await bothWorkersUp(url), [`${base}/1`, `${base}/2`]);
    const started = cluster?.logs().filter((entry) => entry.message === 'worker started' && entry.slot === 2) ?? [];
    const pid = started.at(-1)?.pid as number;
    // Connections the primary hands the worker after it stopped accepting come back unread and go to the other.
    const stats = await trafficAcross(url, key, ['fresh GET /healthz', 'fresh POST /v1/runs'], () => process.kill(pid, 'SIGTERM'));
    console.log('traffic across the SIGTERM:', JSON.stringify(Object.fromEntries(stats)));
    for (const [kind, stat] of stats) {
      assert.ok(stat.requests > 10, `${kind}: traffic flowed (${stat.requests} requests)`);
      assert.ok(stat.maxMs < MAX_WAIT_MS, `${kind}: the slowest attempt took ${Math.round(stat.maxMs)} ms`);
      // Nothing is reset or lost; a new run sent to the draining worker is refused as the contract
      // says for a draining instance (503 `draining`, Retry-After), and a GET is always answered.
      for (const error of stat.errors) assert.match(error, /^(retry: )?status 503 .*"code\\?":\\?"draining/, `${kind}: ${error}`);
      if (kind === 'fresh GET /healthz') assert.equal(stat.failedFirst, 0, stat.errors.join(', '));
    }
    await waitFor(
      () => cluster?.logs().some((entry) => entry.message === 'worker exited unexpectedly; restarting it' && entry.pid === pid),
      {
        what: 'the drained worker to exit and be replaced',
      },
    );
    assert.deepEqual(await bothWorkersUp(url), [`${base}/1`, `${base}/2`]);
  });
});
