import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { RunEvent } from '../../src/domain/index.js';
import { openRedisCluster } from '../../src/streaming/redis/redis-cluster-connections.js';
import { RedisEventStore } from '../../src/streaming/redis/redis-event-store.js';
import { keySlot } from '../../src/streaming/redis/redis-key-slot.js';
import { RedisKeys } from '../../src/streaming/redis/redis-keys.js';
import { RedisLiveness } from '../../src/streaming/redis/redis-liveness.js';
import { ADMIN_TOKEN } from '../helpers/agentd.js';
import { eventStoreContract, type Instances, makeEvents, newRunId, type StoreOptions } from '../helpers/event-store-contract.js';
import { request } from '../helpers/http.js';
import { type AgentdProcess, runAgentdExpectingFailure, spawnAgentd } from '../helpers/process.js';
import { type ClusterNodeClient, startRedisCluster, type TestRedisCluster } from '../helpers/redis-cluster.js';
import { uniquePrefix } from '../helpers/redis.js';
import { assertIncreasingIds, readSse, type SseEvent } from '../helpers/sse.js';
import { createTestDatabase } from '../helpers/test-database.js';
import { waitFor } from '../helpers/wait-for.js';

const tokens = (events: readonly SseEvent[]) => events.filter((e) => e.event === 'token').map((e) => e.data.seq as number);
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Keys under `prefix` on one node (a plain client: SCAN sees that node's keys only). */
async function keysOn(node: ClusterNodeClient, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const batch of node.scanIterator({ MATCH: `${prefix}*`, COUNT: 1_000 })) keys.push(...batch);
  return keys;
}

/** Calls of each command on one node since its last CONFIG RESETSTAT (INFO commandstats). */
async function commandCallsOn(node: ClusterNodeClient): Promise<Map<string, number>> {
  const info = await node.info('commandstats');
  return new Map([...info.matchAll(/^cmdstat_([a-z|]+):calls=(\d+)/gm)].map((match) => [match[1] as string, Number(match[2])]));
}

/**
 * Two event-store instances on the cluster, each with its own connections, sharing a key prefix;
 * each is given one seed only and discovers the other shards.
 */
async function openClusterPair(cluster: TestRedisCluster, options: StoreOptions = {}): Promise<Instances> {
  const { maxLen = 10_000, maxBytes, ttlSeconds = 600 } = options;
  const keys = new RedisKeys(uniquePrefix());
  const errors: unknown[] = [];
  const onError = (error: unknown): void => {
    errors.push(error);
  };
  const nodes = cluster.ports.map((port) => ({ host: '127.0.0.1', port }));
  const tag = randomBytes(4).toString('hex');
  const open = async (role: string) => {
    const instanceId = `test-${role}-${tag}`;
    const redis = await openRedisCluster({ nodes: nodes.slice(0, 1), instanceId, commandsQueueMax: 20_000, onError });
    const store = new RedisEventStore({ redis, keys, instanceId, maxLen, maxBytes, ttlSeconds, onError });
    store.start();
    return { redis, store };
  };
  const a = await open('a');
  const b = await open('b');
  return {
    writer: a.store,
    reader: b.store,
    remote: true,
    // A command connection per master; the subscriber opens with the first subscription.
    connectionsAtStart: cluster.ports.length,
    errors,
    async close() {
      await Promise.all([a.store.close(), b.store.close()]);
      await Promise.all([a.redis.close(), b.redis.close()]);
      assert.equal(a.redis.connectionCount() + b.redis.connectionCount(), 0);
    },
  };
}

describe('Redis Cluster (3 masters of this test, on loopback)', () => {
  let cluster: TestRedisCluster;

  before(async () => {
    cluster = await startRedisCluster(3);
  });
  after(async () => {
    await cluster?.stop();
  });

  it('hashes keys to the slots the cluster does; a run’s keys share one', async () => {
    const keys = new RedisKeys('agentd:');
    const node = cluster.nodes[0] as ClusterNodeClient;
    const samples = [
      'foo',
      '123456789',
      '{user1000}.following',
      'a{}b',
      'x{y',
      'é{ü}',
      keys.runStream('run-1'),
      keys.cancelRequested('run-1'),
    ];
    for (const key of samples) assert.equal(keySlot(key), await node.sendCommand<number>(['CLUSTER', 'KEYSLOT', key]), key);
    assert.equal(keySlot(keys.runStream('run-7')), keySlot(keys.cancelRequested('run-7')));
  });

  eventStoreContract('RedisEventStore on a Redis Cluster (two instances)', true, (options) => openClusterPair(cluster, options));

  it('writes a flush of many runs as one script per shard, and reads them back', async () => {
    const pair = await openClusterPair(cluster);
    try {
      const runs = Array.from({ length: 60 }, newRunId);
      const events = makeEvents(4);
      for (const node of cluster.nodes) await node.sendCommand(['CONFIG', 'RESETSTAT']);
      for (const runId of runs) for (const event of events) pair.writer.append(runId, event);
      await pair.writer.written();
      const calls = await Promise.all(cluster.nodes.map(commandCallsOn));
      const scripts = calls.map((node) => node.get('evalsha') ?? 0);
      // One flush (240 events): each shard got its part as one EVALSHA (and one EVAL if it did not know the script yet).
      assert.deepEqual(scripts, [1, 1, 1], `EVALSHA calls per shard: ${scripts.join(', ')}`);
      assert.equal(
        calls.reduce((sum, node) => sum + (node.get('xadd') ?? 0), 0),
        runs.length * events.length,
      );
      for (const runId of runs) assert.deepEqual(await pair.reader.read(runId, null, 100), events);
      assert.deepEqual(pair.errors, []);
    } finally {
      await pair.close();
    }
  });

  it('follows many runs of another instance with reads batched per shard (no XREAD across slots)', async () => {
    const pair = await openClusterPair(cluster);
    try {
      const runs = Array.from({ length: 60 }, newRunId);
      const events = makeEvents(4);
      for (const node of cluster.nodes) await node.sendCommand(['CONFIG', 'RESETSTAT']);
      const got = new Map(runs.map((runId) => [runId, [] as RunEvent[]]));
      const stops = runs.map((runId) => pair.reader.subscribe(runId, null, (event) => got.get(runId)?.push(event)));
      for (const runId of runs) for (const event of events) pair.writer.append(runId, event);
      await waitFor(() => [...got.values()].every((list) => list.length === events.length), {
        what: 'every run read on the other instance',
      });
      for (const stop of stops) stop();
      for (const list of got.values()) assert.deepEqual(list, events);
      const calls = await Promise.all(cluster.nodes.map(commandCallsOn));
      assert.deepEqual(
        calls.map((node) => node.get('xread') ?? 0),
        [0, 0, 0],
        'reads go as one script per shard',
      );
      assert.ok(
        calls.every((node) => (node.get('xrange') ?? 0) > 0),
        'every shard was read',
      );
      assert.deepEqual(pair.errors, []);
    } finally {
      await pair.close();
    }
  });

  it('liveness notices a shard that stops answering, reconnects it, and tells the readers', async () => {
    const errors: unknown[] = [];
    const onError = (error: unknown): void => {
      errors.push(error);
    };
    const redis = await openRedisCluster({
      nodes: [{ host: '127.0.0.1', port: cluster.ports[0] as number }],
      instanceId: `live-${randomBytes(3).toString('hex')}`,
      commandsQueueMax: 1_000,
      onError,
    });
    const liveness = new RedisLiveness(() => redis.livenessClients(), onError);
    let reconnected = 0;
    redis.onReconnected(() => (reconnected += 1));
    try {
      await redis.subscribe(`${uniquePrefix()}liveness`, () => undefined);
      const watched = Object.keys(redis.livenessClients());
      assert.equal(watched.length, 4, `three masters and the subscriber: ${watched.join(', ')}`);
      cluster.pause(1);
      try {
        await liveness.probeAll();
      } finally {
        cluster.resume(1);
      }
      const dead = `127.0.0.1:${cluster.ports[1]}`;
      assert.ok(
        errors.some((error) => error instanceof Error && error.message.includes(dead) && error.message.includes('is dead')),
        `reported the frozen node ${dead}`,
      );
      await waitFor(() => redis.connectionCount() === 4 && reconnected >= 1, { what: 'the node reconnected and announced' });
      assert.ok(redis.reconnects().ready >= 1);
      await redis.ping();
    } finally {
      await liveness.stop();
      await redis.close();
    }
  });

  describe('two agentd processes on Postgres and the cluster', () => {
    let database: { url: string; drop(): Promise<void> };
    let a: AgentdProcess;
    let b: AgentdProcess;
    let key: string;
    const prefix = 'agentd-cluster:';

    before(async () => {
      database = await createTestDatabase();
      const common = {
        DATABASE_URL: database.url,
        REDIS_CLUSTER_NODES: cluster.seeds,
        REDIS_KEY_PREFIX: prefix,
        ADMIN_TOKEN,
        TIER_LIMITS: 'bulk:10000',
      };
      [a, b] = await Promise.all([spawnAgentd({ ...common, INSTANCE_ID: 'cl-a' }), spawnAgentd({ ...common, INSTANCE_ID: 'cl-b' })]);
      const account = await request(a.url, 'POST', '/v1/admin/accounts', { token: ADMIN_TOKEN, body: { name: 'c', tier: 'bulk' } });
      key = account.body.api_key;
    });
    after(async () => {
      await Promise.all([a?.kill('SIGTERM'), b?.kill('SIGTERM')]);
      await database?.drop();
    });

    const startOnA = async (body: unknown): Promise<string> => {
      const res = await request(a.url, 'POST', '/v1/runs', { token: key, body });
      assert.equal(res.status, 202, res.text);
      return res.body.id as string;
    };

    it('streams runs whose keys land on every shard: live on the other instance, catch-up, Last-Event-ID resume', async () => {
      const runs = await Promise.all(range(24).map(() => startOnA({ agent: 'simulate', input: { events: 30, interval_ms: 3 } })));
      const live = await Promise.all(runs.map((id) => readSse(`${b.url}/v1/runs/${id}/events`, { token: key })));
      for (const result of live) {
        assertIncreasingIds(result.events);
        assert.deepEqual(tokens(result.events), range(30));
        assert.equal(result.events.at(-1)?.event, 'end');
      }
      const perNode = await Promise.all(cluster.nodes.map(async (node) => (await keysOn(node, `${prefix}run:`)).length));
      assert.ok(
        perNode.every((count) => count > 0),
        `run streams on every shard: ${perNode.join(', ')}`,
      );
      assert.equal(
        perNode.reduce((sum, count) => sum + count, 0),
        runs.length,
      );
      for (const [index, id] of runs.entries()) {
        const all = (live[index] as { events: SseEvent[] }).events.map((e) => e.id);
        const catchUp = await readSse(`${a.url}/v1/runs/${id}/events`, { token: key });
        assert.deepEqual(
          catchUp.events.map((e) => e.id),
          all,
          'catch-up on the writer',
        );
        const resumed = await readSse(`${b.url}/v1/runs/${id}/events`, { token: key, headers: { 'last-event-id': all[9] as string } });
        assert.deepEqual(
          resumed.events.map((e) => e.id),
          all.slice(10),
          'resume after Last-Event-ID',
        );
      }
    });

    it('resumes mid-run on the other instance after a disconnect', async () => {
      const id = await startOnA({ agent: 'simulate', input: { events: 40, interval_ms: 10 } });
      const url = `${b.url}/v1/runs/${id}/events`;
      const first = await readSse(url, { token: key, stopWhen: (events) => tokens(events).length >= 10 });
      assert.ok(!first.closedByServer);
      const rest = await readSse(url, { token: key, headers: { 'last-event-id': first.events.at(-1)?.id as string } });
      const joined = [...first.events, ...rest.events];
      assertIncreasingIds(joined);
      assert.deepEqual(tokens(joined), range(40));
      assert.equal(joined.at(-1)?.event, 'end');
    });

    it('cancels runs from the other instance; each listener gets its `end`', async () => {
      const runs = await Promise.all(range(6).map(() => startOnA({ agent: 'simulate', input: { events: 100_000, interval_ms: 20 } })));
      for (const id of runs) {
        await waitFor(async () => (await request(a.url, 'GET', `/v1/runs/${id}`, { token: key })).body.status === 'running');
      }
      const listening = runs.map((id) => readSse(`${b.url}/v1/runs/${id}/events`, { token: key, timeoutMs: 60_000 }));
      for (const id of runs) {
        const cancel = await request(b.url, 'POST', `/v1/runs/${id}/cancel`, { token: key });
        assert.equal(cancel.status, 202, cancel.text);
      }
      for (const result of await Promise.all(listening)) {
        assert.equal(result.events.at(-1)?.event, 'end');
        assert.deepEqual(result.events.at(-1)?.data, { status: 'cancelled' });
      }
      const perNode = await Promise.all(cluster.nodes.map((node) => keysOn(node, `${prefix}run:`)));
      for (const id of runs) {
        const holders = perNode.filter((keys) => keys.includes(`${prefix}run:{${id}}:cancel`));
        assert.equal(holders.length, 1, `the cancel key of ${id} on one shard`);
        assert.ok(holders[0]?.includes(`${prefix}run:{${id}}:events`), `the cancel key of ${id} beside its stream`);
      }
      await waitFor(async () => (await request(a.url, 'GET', '/v1/admin/capacity', { token: ADMIN_TOKEN })).body.runs.in_use === 0, {
        what: 'every slot freed',
      });
    });
  });

  it('refuses REDIS_URL and REDIS_CLUSTER_NODES together, naming both', async () => {
    const result = await runAgentdExpectingFailure({ REDIS_URL: 'redis://127.0.0.1:6379', REDIS_CLUSTER_NODES: cluster.seeds });
    assert.notEqual(result.code, 0);
    assert.match(result.stderr + result.stdout, /REDIS_URL and REDIS_CLUSTER_NODES are exclusive/);
  });

  it('says in one line that no seed of the cluster answers, naming them and the cause (exit 1)', async () => {
    const database = await createTestDatabase();
    try {
      const result = await runAgentdExpectingFailure({ DATABASE_URL: database.url, REDIS_CLUSTER_NODES: '127.0.0.1:1,127.0.0.1:2' });
      assert.equal(result.code, 1, result.stderr);
      assert.match(result.stderr, /cannot connect to the Redis Cluster at 127\.0\.0\.1:1,127\.0\.0\.1:2\n {2}caused by: .*ECONNREFUSED/);
    } finally {
      await database.drop();
    }
  });

  it('stops start-up when the smallest shard’s maxclients cannot hold every process', async () => {
    const node = cluster.nodes[1] as ClusterNodeClient;
    await node.configSet('maxclients', '20');
    try {
      const database = await createTestDatabase();
      try {
        const result = await runAgentdExpectingFailure({
          DATABASE_URL: database.url,
          REDIS_CLUSTER_NODES: cluster.seeds,
          DB_INSTANCES: '50',
        });
        assert.equal(result.code, 2, result.stderr);
        assert.match(result.stderr + result.stdout, /maxclients \(the smallest of the cluster shards\) is 20/);
      } finally {
        await database.drop();
      }
    } finally {
      await node.configSet('maxclients', '10000');
    }
  });
});
