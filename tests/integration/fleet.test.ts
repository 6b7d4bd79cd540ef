/**
 * Three agentd instances behind a round-robin TCP load balancer, as a deployment runs them:
 * nothing sticky, so a run is created, streamed, resumed and cancelled through whichever
 * instance each connection lands on; tier limits hold across the fleet; a SIGKILLed instance
 * is skipped by the balancer and its runs are swept by the others.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ADMIN_TOKEN } from '../helpers/agentd.js';
import { request } from '../helpers/http.js';
import { spawnAgentd, type AgentdProcess } from '../helpers/process.js';
import { cleanupPrefix, redisUrl, uniquePrefix } from '../helpers/redis.js';
import { startRoundRobinProxy, type RoundRobinProxy } from '../helpers/round-robin-proxy.js';
import { readSse, type SseEvent } from '../helpers/sse.js';
import { createTestDatabase } from '../helpers/test-database.js';
import { waitFor } from '../helpers/wait-for.js';

const LONG = { agent: 'simulate', input: { events: 100_000, interval_ms: 50 } };
/** Short beats: an instance is judged dead after 3 × 300 ms of silence. */
const FAST_BEAT = '300';

describe('three instances behind a round-robin load balancer', () => {
  let database: { url: string; drop(): Promise<void> };
  let proxy: RoundRobinProxy;
  const procs: AgentdProcess[] = [];
  const prefix = uniquePrefix();
  const tag = `f${process.pid}`;
  let bulkKey: string;
  let freeKey: string;

  /** One request through the balancer on a connection of its own, so each lands on the next instance. */
  const via = (method: string, path: string, token: string, body?: unknown) =>
    request(proxy.url, method, path, { token, body, headers: { connection: 'close' } });
  const portOf = (instanceId: string) => {
    const proc = procs[['a', 'b', 'c'].indexOf(instanceId.slice(tag.length + 1))];
    assert.ok(proc !== undefined, `instance ${instanceId} is one of ours`);
    return Number(new URL(proc.url).port);
  };
  /** Follows a run's events through the balancer, resuming with Last-Event-ID whenever a connection ends before `end`. */
  const follow = async (id: string, token: string, onEvent: (event: SseEvent) => void, from?: string) => {
    const events: SseEvent[] = [];
    for (let attempt = 0; attempt < 5 && events.at(-1)?.event !== 'end'; attempt += 1) {
      const last = events.at(-1)?.id ?? from;
      const headers: Record<string, string> = { connection: 'close', ...(last === undefined ? {} : { 'last-event-id': last }) };
      try {
        await readSse(`${proxy.url}/v1/runs/${id}/events`, {
          token,
          headers,
          onEvent: (event) => {
            events.push(event);
            onEvent(event);
          },
        });
      } catch {
        // the instance serving this stream died mid-read; resume from the last id through another
      }
    }
    return events;
  };
  const tokenSeqs = (events: readonly SseEvent[]) => events.filter((e) => e.event === 'token').map((e) => e.data.seq as number);

  before(async () => {
    database = await createTestDatabase();
    const spawned = await Promise.all(
      ['a', 'b', 'c'].map((name) =>
        spawnAgentd({
          DATABASE_URL: database.url,
          REDIS_URL: redisUrl(),
          REDIS_KEY_PREFIX: prefix,
          ADMIN_TOKEN,
          INSTANCE_ID: `${tag}-${name}`,
          INSTANCE_HEARTBEAT_MS: FAST_BEAT,
          TIER_LIMITS: 'free:2,bulk:1000',
          SHUTDOWN_GRACE_MS: '1000',
        }),
      ),
    );
    procs.push(...spawned);
    proxy = await startRoundRobinProxy(procs.map((proc) => Number(new URL(proc.url).port)));
    const account = async (tier: string) => {
      const res = await via('POST', '/v1/admin/accounts', ADMIN_TOKEN, { name: tier, tier });
      assert.equal(res.status, 201, res.text);
      return res.body.api_key as string;
    };
    bulkKey = await account('bulk');
    freeKey = await account('free');
  });
  after(async () => {
    await proxy?.close();
    await Promise.all(procs.map((proc) => proc.kill('SIGKILL')));
    await database?.drop();
    await cleanupPrefix(prefix);
  });

  it('a run created through one instance is streamed, resumed with Last-Event-ID and cancelled through the others', async () => {
    const created = await via('POST', '/v1/runs', bulkKey, LONG);
    assert.equal(created.status, 202, created.text);
    const id = created.body.id as string;
    const owner = portOf(created.body.instance_id as string);
    assert.equal(proxy.routes.at(-1), owner, 'the instance the create landed on runs the run');

    const first = await readSse(`${proxy.url}/v1/runs/${id}/events`, {
      token: bulkKey,
      headers: { connection: 'close' },
      stopWhen: (events) => tokenSeqs(events).length >= 3,
    });
    const firstRoute = proxy.routes.at(-1);
    let cancelled: Promise<{ status: number }> | undefined;
    let cancelRoute: number | undefined;
    const rest = await follow(
      id,
      bulkKey,
      (event) => {
        if (event.event !== 'token' || cancelled !== undefined) return;
        // One connection in between, so the cancel lands on an instance that does not run the run.
        cancelled = via('GET', '/healthz', bulkKey)
          .then(() => via('POST', `/v1/runs/${id}/cancel`, bulkKey))
          .finally(() => (cancelRoute = proxy.routes.at(-1)));
      },
      first.events.at(-1)?.id,
    );
    assert.equal((await cancelled)?.status, 202);
    const resumeRoute = proxy.routes[proxy.routes.length - 3];
    for (const route of [firstRoute, resumeRoute, cancelRoute])
      assert.notEqual(route, owner, 'served by an instance that does not run the run');
    assert.equal(rest.at(-1)?.event, 'end');
    assert.equal(rest.at(-1)?.data.status, 'cancelled');
    const seqs = [...tokenSeqs(first.events), ...tokenSeqs(rest)];
    assert.deepEqual(
      seqs,
      seqs.map((_, i) => i),
      'every token once, in order, across the resume',
    );
  });

  it('TIER_LIMITS free:2: 20 concurrent creates through the balancer admit exactly 2, over all three instances', async () => {
    const before = proxy.routes.length;
    const answers = await Promise.all(Array.from({ length: 20 }, () => via('POST', '/v1/runs', freeKey, LONG)));
    assert.deepEqual(new Set(proxy.routes.slice(before)).size, 3, 'the creates reached every instance');
    const admitted = answers.filter((res) => res.status === 202);
    assert.equal(admitted.length, 2, answers.map((res) => res.status).join(' '));
    assert.ok(answers.every((res) => res.status === 202 || res.status === 429));
    for (const res of admitted) assert.equal((await via('POST', `/v1/runs/${res.body.id}/cancel`, freeKey)).status, 202);
    // Both leases are free again, whichever instance took them.
    const next = await via('POST', '/v1/runs', freeKey, { agent: 'echo' });
    assert.equal(next.status, 202, next.text);
  });

  it('an instance SIGKILLed with runs in flight: the balancer skips it, its runs end interrupted and their listeners get end', async () => {
    const ids: string[] = [];
    const byPort = new Map<number, string>();
    while (byPort.size < 3) {
      assert.ok(ids.length < 9, 'round-robin put a run on every instance');
      const res = await via('POST', '/v1/runs', bulkKey, LONG);
      assert.equal(res.status, 202, res.text);
      ids.push(res.body.id as string);
      byPort.set(portOf(res.body.instance_id as string), res.body.id as string);
    }
    const victim = procs[2] as AgentdProcess;
    const victimPort = Number(new URL(victim.url).port);
    const victimRun = byPort.get(victimPort) as string;
    const tokens = new Map<string, number>();
    const listeners = ids.map((id) => follow(id, bulkKey, (e) => e.event === 'token' && tokens.set(id, (tokens.get(id) ?? 0) + 1)));
    await waitFor(() => ids.every((id) => (tokens.get(id) ?? 0) >= 2), { what: 'every listener to receive events' });

    await victim.kill('SIGKILL');
    const before = proxy.routes.length;
    for (let i = 0; i < 6; i += 1)
      assert.equal((await via('GET', '/healthz', bulkKey)).status, 200, 'the balancer skips the dead instance');
    assert.ok(!proxy.routes.slice(before).includes(victimPort));

    const swept = await waitFor(
      async () => {
        const run = (await via('GET', `/v1/runs/${victimRun}`, bulkKey)).body;
        return run.status === 'interrupted' ? run : undefined;
      },
      { what: 'the dead instance’s run to be swept', timeoutMs: 20_000 },
    );
    assert.equal(swept.error.code, 'instance_lost');
    for (const id of ids.filter((id) => id !== victimRun)) assert.equal((await via('POST', `/v1/runs/${id}/cancel`, bulkKey)).status, 202);
    const ends = await Promise.all(listeners);
    for (const [i, events] of ends.entries()) {
      const end = events.at(-1);
      assert.equal(end?.event, 'end', `listener ${i} got end`);
      assert.equal(end?.data.status, ids[i] === victimRun ? 'interrupted' : 'cancelled');
      const seqs = tokenSeqs(events);
      assert.deepEqual(
        seqs,
        seqs.map((_, n) => n),
        `listener ${i}: every token once, in order`,
      );
    }
  });
});
