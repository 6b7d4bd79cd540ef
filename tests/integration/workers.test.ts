import assert from 'node:assert/strict';
import { Agent, request as httpRequest, type IncomingMessage } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { ADMIN_TOKEN } from '../helpers/agentd.js';
import { request } from '../helpers/http.js';
import { metricSum, parseMetrics, type Sample } from '../helpers/metrics.js';
import { type AgentdProcess, runAgentdExpectingFailure, spawnAgentd } from '../helpers/process.js';
import { cleanupPrefix, redisUrl, uniquePrefix } from '../helpers/redis.js';
import { createTestDatabase } from '../helpers/test-database.js';
import { waitFor } from '../helpers/wait-for.js';

const LONG = { agent: 'simulate', input: { events: 100_000, interval_ms: 50 } };

interface SseEvent {
  readonly event: string;
  readonly data: any;
}

/**
 * One keep-alive connection to the cluster. Cluster balances connections, not requests, so
 * every request on it reaches the same worker: the one `whoami` names.
 */
class Connection {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 1 });
  private sockets = 0;

  constructor(private readonly url: string) {
    const create = this.agent.createConnection.bind(this.agent);
    this.agent.createConnection = (...args: Parameters<typeof create>) => {
      this.sockets += 1;
      return create(...args);
    };
  }

  private send(method: string, path: string, token: string, body?: unknown): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(`${this.url}${path}`, {
        method,
        agent: this.agent,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      });
      req.on('response', resolve).on('error', reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  }

  async text(method: string, path: string, token: string, body?: unknown): Promise<{ status: number; text: string }> {
    const res = await this.send(method, path, token, body);
    let text = '';
    for await (const chunk of res.setEncoding('utf8')) text += chunk as string;
    return { status: res.statusCode ?? 0, text };
  }

  async json(method: string, path: string, token: string, body?: unknown): Promise<{ status: number; body: any }> {
    const { status, text } = await this.text(method, path, token, body);
    return { status, body: text === '' ? undefined : JSON.parse(text) };
  }

  /** The instance id of the worker behind this connection. */
  async whoami(): Promise<string> {
    const res = await this.json('GET', '/v1/admin/capacity', ADMIN_TOKEN);
    return res.body.instance_id as string;
  }

  /** Reads a run's events until the server ends the stream, calling `onEvent` as they come. */
  async events(runId: string, token: string, onEvent: (event: SseEvent) => void): Promise<SseEvent[]> {
    const res = await this.send('GET', `/v1/runs/${runId}/events`, token);
    assert.equal(res.statusCode, 200);
    const events: SseEvent[] = [];
    let buffer = '';
    for await (const chunk of res.setEncoding('utf8')) {
      buffer += chunk as string;
      for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
        const fields = new Map(
          buffer
            .slice(0, end)
            .split('\n')
            .map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1).trim()]),
        );
        buffer = buffer.slice(end + 2);
        const data = fields.get('data');
        if (data === undefined) continue; // a `: ping`
        const event = { event: fields.get('event') ?? 'message', data: JSON.parse(data) };
        events.push(event);
        onEvent(event);
      }
    }
    return events;
  }

  /** True while every request went over one socket, i.e. to one worker. */
  get pinned(): boolean {
    return this.sockets === 1;
  }

  close(): void {
    this.agent.destroy();
  }
}

/** A connection that reached the worker `instanceId` (round-robin gets there in a few tries). */
async function connectTo(url: string, instanceId: string): Promise<Connection> {
  return waitFor(
    async () => {
      const connection = new Connection(url);
      if ((await connection.whoami()) === instanceId) return connection;
      connection.close();
      return undefined;
    },
    { what: `a connection to ${instanceId}` },
  );
}

/** The pid of the worker now in `slot`, from the primary's `worker started` log lines. */
function workerPid(cluster: AgentdProcess, slot: number): number {
  const started = cluster.logs().filter((entry) => entry.message === 'worker started' && entry.slot === slot);
  const pid = started.at(-1)?.pid;
  assert.equal(typeof pid, 'number', `no worker started in slot ${slot}`);
  return pid as number;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false; // ESRCH: gone
  }
}

describe('WORKERS: one port, several agentd processes', () => {
  it('refuses WORKERS > 1 without REDIS_URL, naming WORKERS (exit 2)', async () => {
    const { code, stderr } = await runAgentdExpectingFailure({ WORKERS: '2', DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/unused' });
    assert.equal(code, 2);
    assert.match(stderr, /WORKERS needs DATABASE_URL and REDIS_URL.*"2"/);
  });

  it('refuses WORKERS=abc (exit 2)', async () => {
    const { code, stderr } = await runAgentdExpectingFailure({ WORKERS: 'abc' });
    assert.equal(code, 2);
    assert.match(stderr, /WORKERS .*"abc"/);
  });

  it('stops restarting workers that keep failing to start, and exits 1', async () => {
    // The primary connects to nothing; each worker finds the database unreachable and exits 1.
    const { code, stderr } = await runAgentdExpectingFailure(
      { WORKERS: '2', DATABASE_URL: 'postgres://postgres@127.0.0.1:1/agentd', REDIS_URL: redisUrl(), INSTANCE_ID: `loop${process.pid}` },
      { timeoutMs: 120_000 },
    );
    assert.equal(code, 1);
    assert.match(stderr, /cannot connect to the database at 127\.0\.0\.1:1\n {2}caused by: .*ECONNREFUSED/);
  });

  describe('WORKERS=2 on Postgres and Redis', () => {
    let database: { url: string; drop(): Promise<void> };
    let cluster: AgentdProcess | undefined;
    let key: string;
    const prefix = uniquePrefix();
    const base = `w${process.pid}`;
    let seen = new Set<string>();
    const env = () => ({
      DATABASE_URL: database.url,
      REDIS_URL: redisUrl(),
      REDIS_KEY_PREFIX: prefix,
      ADMIN_TOKEN,
      WORKERS: '2',
      INSTANCE_ID: base,
      SHUTDOWN_GRACE_MS: '300',
      TIER_LIMITS: 'bulk:10000',
    });
    /** A new connection per request, so round-robin spreads them over the workers. */
    const fresh = (method: string, path: string, body?: unknown) =>
      request(cluster?.url ?? '', method, path, { token: key, body, headers: { connection: 'close' } });
    /** Starts echo runs through the port until both workers have run one. */
    const runOnBothWorkers = () =>
      waitFor(
        async () => {
          const res = await fresh('POST', '/v1/runs', { agent: 'echo', input: 'hi' });
          assert.equal(res.status, 202, res.text);
          seen.add(res.body.instance_id as string);
          return seen.size === 2 ? [...seen].sort() : undefined;
        },
        { what: 'runs on both workers' },
      );

    before(async () => {
      database = await createTestDatabase();
      cluster = await spawnAgentd(env());
      const account = await request(cluster.url, 'POST', '/v1/admin/accounts', { token: ADMIN_TOKEN, body: { name: 'w', tier: 'bulk' } });
      key = account.body.api_key as string;
    });
    after(async () => {
      await cluster?.kill('SIGKILL');
      await database?.drop();
      await cleanupPrefix(prefix);
    });

    it('runs created through the one port run on two workers, each with its own instance id', async () => {
      seen = new Set();
      assert.deepEqual(await runOnBothWorkers(), [`${base}/1`, `${base}/2`]);
    });

    it('answers /metrics through either worker with the sum over both', async () => {
      const [one, two] = [await connectTo(cluster?.url ?? '', `${base}/1`), await connectTo(cluster?.url ?? '', `${base}/2`)];
      const scrape = async (connection: Connection): Promise<Sample[]> => {
        const res = await connection.text('GET', '/metrics', ADMIN_TOKEN);
        assert.equal(res.status, 200, res.text);
        return parseMetrics(res.text);
      };
      try {
        const before = await scrape(one);
        const finished = (samples: Sample[]) => metricSum(samples, 'agentd_runs_finished_total', { agent: 'echo' });
        // Round-robin spreads fresh connections over the workers; go on until both ran some.
        const byWorker = new Map<string, number>();
        let runs = 0;
        while (runs < 20 || byWorker.size < 2) {
          assert.ok(runs < 200, 'the runs went to both workers');
          const res = await fresh('POST', '/v1/runs', { agent: 'echo', input: runs });
          assert.equal(res.status, 202, res.text);
          byWorker.set(res.body.instance_id, (byWorker.get(res.body.instance_id) ?? 0) + 1);
          runs += 1;
        }
        const expected = finished(before) + runs;
        await waitFor(async () => finished(await scrape(one)) === expected, { what: `${expected} finished runs in worker 1's answer` });
        const [fromOne, fromTwo] = [await scrape(one), await scrape(two)];
        for (const samples of [fromOne, fromTwo]) {
          assert.equal(finished(samples), expected, 'either worker answers for both');
          assert.equal(
            metricSum(samples, 'agentd_runs_admitted_total', { agent: 'echo' }),
            metricSum(before, 'agentd_runs_admitted_total', { agent: 'echo' }) + runs,
          );
          assert.equal(samples.filter((s) => s.name === 'agentd_build_info').length, 1, 'build info once');
          assert.equal(samples.filter((s) => s.name === 'process_cpu_seconds_total').length, 1, 'one CPU figure, summed');
        }
        // Each worker reports the fleet it saw at its last beat: the answer is the fleet, not its sum over the workers.
        await waitFor(async () => metricSum(await scrape(two), 'agentd_instances', { state: 'alive' }) === 2, {
          what: 'two instances alive',
        });
        // Limits add up over the workers: each has its own run slots.
        const slots = await Promise.all(
          [one, two].map(async (c) => (await c.json('GET', '/v1/admin/capacity', ADMIN_TOKEN)).body.runs.capacity as number),
        );
        assert.equal(metricSum(fromTwo, 'agentd_run_slots'), slots[0]! + slots[1]!);
      } finally {
        one.close();
        two.close();
      }
    });

    it('streams and cancels a run of one worker through the other', async () => {
      const [one, two, twoAgain] = [
        await connectTo(cluster?.url ?? '', `${base}/1`),
        await connectTo(cluster?.url ?? '', `${base}/2`),
        await connectTo(cluster?.url ?? '', `${base}/2`),
      ];
      try {
        const run = await one.json('POST', '/v1/runs', key, LONG);
        assert.equal(run.status, 202);
        assert.equal(run.body.instance_id, `${base}/1`);
        let tokens = 0;
        let cancelled: Promise<{ status: number }> | undefined;
        const events = await two.events(run.body.id as string, key, (event) => {
          if (event.event === 'token') tokens += 1;
          // Live events from worker 1 reached worker 2's listener: cancel through worker 2.
          if (tokens === 3) cancelled = twoAgain.json('POST', `/v1/runs/${run.body.id}/cancel`, key);
        });
        assert.equal((await cancelled)?.status, 202);
        assert.equal(events.at(-1)?.event, 'end');
        assert.equal(events.at(-1)?.data.status, 'cancelled');
        const seqs = events.filter((e) => e.event === 'token').map((e) => e.data.seq as number);
        assert.deepEqual(
          seqs,
          seqs.map((_, i) => i),
          'every token once, in order',
        );
        assert.equal((await one.json('GET', `/v1/runs/${run.body.id}`, key)).body.status, 'cancelled');
        assert.ok(one.pinned && two.pinned && twoAgain.pinned, 'each connection stayed on its worker');
      } finally {
        for (const connection of [one, two, twoAgain]) connection.close();
      }
    });

    it('restarts a SIGKILLed worker in its slot, which ends its leftover run `instance_lost`; the port keeps answering', async () => {
      const one = await connectTo(cluster?.url ?? '', `${base}/1`);
      const run = await one.json('POST', '/v1/runs', key, LONG);
      one.close();
      assert.equal(run.body.instance_id, `${base}/1`);
      const pid = workerPid(cluster as AgentdProcess, 1);
      process.kill(pid, 'SIGKILL');
      // From the log line on, worker 2 takes every connection (worker-kill.test.ts covers the moments before).
      await waitFor(
        () => cluster?.logs().some((entry) => entry.message === 'worker exited unexpectedly; restarting it' && entry.pid === pid),
        {
          what: 'the primary to see the worker exit',
        },
      );

      const ended = await waitFor(
        async () => {
          const res = await fresh('GET', `/v1/runs/${run.body.id}`);
          assert.equal(res.status, 200, 'the port answers while a worker is down');
          return res.body.status === 'interrupted' ? res.body : undefined;
        },
        { what: 'the killed worker’s run to end', timeoutMs: 30_000 },
      );
      assert.equal(ended.error.code, 'instance_lost');
      assert.notEqual(workerPid(cluster as AgentdProcess, 1), pid, 'slot 1 has a new process');
      seen = new Set();
      assert.deepEqual(await runOnBothWorkers(), [`${base}/1`, `${base}/2`]);
    });

    it('SIGTERM on the primary drains both workers and exits 0, leaving no worker behind', async () => {
      const runs = [];
      for (const slot of [1, 2]) {
        const connection = await connectTo(cluster?.url ?? '', `${base}/${slot}`);
        runs.push((await connection.json('POST', '/v1/runs', key, LONG)).body.id as string);
        connection.close();
      }
      const pids = [workerPid(cluster as AgentdProcess, 1), workerPid(cluster as AgentdProcess, 2)];
      assert.equal(await cluster?.kill('SIGTERM'), 0);
      assert.deepEqual(pids.filter(isAlive), [], 'no orphaned worker');

      const restarted = await spawnAgentd(env());
      cluster = restarted;
      for (const id of runs) {
        const res = await request(restarted.url, 'GET', `/v1/runs/${id}`, { token: key });
        assert.equal(res.body.status, 'interrupted');
        assert.equal(res.body.error.code, 'shutdown');
      }
      assert.equal(await restarted.kill('SIGTERM'), 0);
      cluster = undefined;
    });
  });
});
