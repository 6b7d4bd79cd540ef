/**
 * `npm run bench`: agentd (from dist/, as separate OS processes on real Postgres and Redis)
 * against the queue-hop peer (Express + BullMQ) and the LangGraph JS dev server, driven over
 * HTTP from this process and a listener process. Prints the table and writes
 * bench/results/latest.json. Flags: --quick, --embedded, --only=a,b, --profile, --skip-peers, --passes=K.
 */
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { createDatabase, deletePrefix, openRedisClient, startPrivateRedis, type BenchDatabase, type RedisClient } from './lib/infra.js';
import { keepAliveAgent, request, requestJson } from './lib/http.js';
import { LISTENER_NODE_ARGS } from './lib/listener-pool.js';
import { autovacuumOff, pinDatabase, type PinReport } from './lib/pinning.js';
import { formatSpread, repeat, type Spread } from './lib/passes.js';
import { freePort, postgresPidsOf, ROOT, startAgentd, type AgentdProcess } from './lib/procs.js';
import { cpuBetween, snapshot } from './lib/load.js';
import { round } from './lib/stats.js';
import {
  agentdSystem,
  ensurePeersInstalled,
  langGraphSimulate,
  startLangGraph,
  startQueueHop,
  type LangGraphPeer,
  type QueueHopPeer,
} from './lib/systems.js';
import { markdownTable, targetMet, textTable, type Row } from './lib/table.js';
import { formatSummary, summarizeProfile } from './profile-summary.js';
import { repeatAdmission, runAdmission, statusesOverHttp, type AdmissionResult, type StatusCounter } from './scenarios/admission.js';
import { runDispatch, type DispatchResult } from './scenarios/dispatch.js';
import { runFanout, type FanoutResult, type FanoutTarget } from './scenarios/fanout.js';
import { combineFanoutPasses, describePass, type FanoutPass, type FanoutPasses } from './scenarios/fanout-passes.js';
import { runSoak, type SoakResult } from './scenarios/soak.js';

const SCENARIOS = ['dispatch', 'admission', 'fanout', 'soak'] as const;
type Scenario = (typeof SCENARIOS)[number];

const args = process.argv.slice(2);
const flag = (name: string) => args.includes(`--${name}`);
const quick = flag('quick');
const embedded = flag('embedded');
const profile = flag('profile');
const skipPeers = flag('skip-peers');
const onlyArg = args.find((a) => a.startsWith('--only='))?.slice('--only='.length);
/** Extra node flags for the agentd processes, for experiments (e.g. --agentd-node-args=--max-semi-space-size=64). */
const agentdNodeArgs = (args.find((a) => a.startsWith('--agentd-node-args='))?.slice('--agentd-node-args='.length) ?? '')
  .split(' ')
  .filter((a) => a !== '');
/** Extra environment for the agentd processes, for experiments (e.g. --agentd-env=DB_MAX_CONNECTIONS=48,LOG_LEVEL=warn). */
const agentdExtraEnv = Object.fromEntries(
  (args.find((a) => a.startsWith('--agentd-env='))?.slice('--agentd-env='.length) ?? '')
    .split(',')
    .filter((pair) => pair.includes('='))
    .map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]),
);
const sizesArg = args.find((a) => a.startsWith('--fanout-sizes='))?.slice('--fanout-sizes='.length);
const passesArg = args.find((a) => a.startsWith('--passes='))?.slice('--passes='.length);
const only = new Set<Scenario>(onlyArg === undefined ? SCENARIOS : (onlyArg.split(',') as Scenario[]));
for (const s of only) if (!SCENARIOS.includes(s)) throw new Error(`unknown scenario ${s}; use one of ${SCENARIOS.join(', ')}`);

/** Sizes of the default run and of --quick. */
const PLAN = quick
  ? {
      dispatch: { warmup: 20, count: 200, langgraphWarmup: 5, langgraphCount: 30 },
      admission: { runs: 1_000, clients: 64, accounts: 200, warmup: 100 },
      passes: 1,
      fanout: { sizes: [100], durationS: 10, single: { listeners: 200 }, langgraphSizes: [100] },
      soak: { runs: 2_000, warmup: 200, clients: 64 },
    }
  : {
      dispatch: { warmup: 200, count: 2_000, langgraphWarmup: 20, langgraphCount: 300 },
      admission: { runs: 5_000, clients: 64, accounts: 200, warmup: 500 },
      passes: 3,
      fanout: { sizes: [100, 1_000, 2_000], durationS: 30, single: { listeners: 1_000 }, langgraphSizes: [100, 1_000] },
      soak: { runs: 20_000, warmup: 2_000, clients: 64 },
    };
if (sizesArg !== undefined) PLAN.fanout.sizes = sizesArg.split(',').map(Number);
if (passesArg !== undefined) {
  PLAN.passes = Number(passesArg);
  if (!Number.isInteger(PLAN.passes) || PLAN.passes < 1) throw new Error(`--passes wants a whole number ≥ 1, got ${passesArg}`);
}
const RATE_PER_RUN = 20;

const ADMIN_TOKEN = `bench-admin-${randomBytes(12).toString('hex')}`;
const TIERS = { free: 1, pro: 100, enterprise: 5_000 };
const TIER_LIMITS = Object.entries(TIERS)
  .map(([tier, limit]) => `${tier}:${limit}`)
  .join(',');
const RUN_ID = randomBytes(4).toString('hex');
const REDIS_PREFIX = `agentd-bench:${RUN_ID}:`;
const ADMIN_DB_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const RESULTS = join(ROOT, 'bench', 'results');
const BENCH_STARTED_MS = Date.now();
const PROFILES = join(RESULTS, 'profiles');

let redisPid = -1;
const LOG_FILE = join(ROOT, 'bench', 'results', 'latest.log');
/** agentd's own logs, one file per process, in a folder of this run (a leftover process cannot write into them). */
const LOG_DIR = join(ROOT, 'bench', 'results', 'logs', RUN_ID);
mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
writeFileSync(LOG_FILE, '');
const log = (line: string) => {
  const text = `[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`;
  process.stderr.write(text);
  appendFileSync(LOG_FILE, text);
};
const mb = (bytes: number) => round(bytes / 1024 / 1024, 1);
/** What counts as the bench's own CPU in `load`: its peers' folder and, once created, its databases (their backends). */
const ourMarkers: string[] = [join(ROOT, 'bench', 'peers') + '/'];

/** Everything started by this run, stopped in reverse order at the end (also on failure). */
const cleanups: Array<{ what: string; run: () => Promise<unknown> }> = [];
const onCleanup = (what: string, run: () => Promise<unknown>) => cleanups.push({ what, run });

interface Results {
  meta: Record<string, unknown>;
  dispatch: Record<string, DispatchResult | { error: string }>;
  admission: Record<string, AdmissionResult | { error: string }>;
  fanout: Record<string, FanoutResult | FanoutPasses | { error: string }>;
  soak?: SoakResult | { error: string };
  profiles: Array<ReturnType<typeof summarizeProfile>>;
  /** Cores used per step by the bench's processes and by everything else on the machine. */
  load: Record<string, ReturnType<typeof cpuBetween>>;
  rows: Row[];
}

const results: Results = { meta: {}, dispatch: {}, admission: {}, fanout: {}, profiles: [], load: {}, rows: [] };

function errorText(error: unknown): string {
  return error instanceof Error ? error.message.split('\n').slice(0, 6).join(' | ') : String(error);
}

/** Runs a step; on failure records the error under `key` instead of aborting the whole bench. */
async function attempt<T>(what: string, record: (value: T | { error: string }) => void, step: () => Promise<T>): Promise<void> {
  log(`${what} ...`);
  const started = Date.now();
  const before = snapshot(ourMarkers);
  try {
    record(await step());
    const load = cpuBetween(before, snapshot(ourMarkers));
    results.load[what] = load;
    log(
      `${what} done in ${((Date.now() - started) / 1000).toFixed(1)} s (CPU: bench ${load.ours} cores, other processes ${load.others} cores${load.others >= 0.2 ? `, busiest: ${load.busiestOther}` : ''})`,
    );
  } catch (error) {
    log(`${what} FAILED: ${errorText(error)}`);
    record({ error: errorText(error) });
  }
}

function sqlStatusCounter(url: string): { count: StatusCounter; close: () => Promise<void> } {
  const sql = postgres(url, { max: 2, onnotice: () => undefined });
  return {
    async count(runs) {
      const counts: Record<string, number> = {};
      const ids = runs.map((r) => r.id);
      for (let i = 0; i < ids.length; i += 5_000) {
        const rows = await sql<Array<{ status: string; n: string }>>`
          SELECT status, count(*)::text AS n FROM runs WHERE id = ANY(${ids.slice(i, i + 5_000)}::uuid[]) GROUP BY status`;
        for (const row of rows) counts[row.status] = (counts[row.status] ?? 0) + Number(row.n);
      }
      return counts;
    },
    close: () => sql.end({ timeout: 2 }),
  };
}

async function main(): Promise<void> {
  mkdirSync(RESULTS, { recursive: true });
  rmSync(join(RESULTS, 'logs'), { recursive: true, force: true }); // earlier runs' agentd logs
  if (profile) mkdirSync(PROFILES, { recursive: true });
  const started = Date.now();
  results.meta = {
    startedAt: new Date().toISOString(),
    mode: quick ? 'quick' : 'full',
    scenarios: [...only],
    embedded,
    profile,
    agentdNodeArgs,
    agentdExtraEnv,
    machine: {
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      memoryBytes: os.totalmem(),
      kernel: os.release(),
      node: process.version,
    },
    agentdCommit: readGitHead(),
    passes: PLAN.passes,
    listenerNodeArgs: LISTENER_NODE_ARGS,
    pinning: 'autovacuum off on the bench database; before each pass VACUUM ANALYZE + CHECKPOINT (fan-out: tables truncated first)',
    packages: packageVersions(),
  };
  const idleBefore = snapshot(ourMarkers);
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  results.load['before start (2 s)'] = cpuBetween(idleBefore, snapshot(ourMarkers));
  log(
    `mode ${quick ? 'quick' : 'full'}; other processes use ${results.load['before start (2 s)']?.others} cores before start; scenarios ${[...only].join(', ')}${embedded ? ' + embedded' : ''}${profile ? '; profiling agentd' : ''}`,
  );

  // --- infrastructure: our own database on the shared Postgres, our own redis-server ---
  const redis = await startPrivateRedis();
  redisPid = redis.proc.pid;
  onCleanup('redis-server', () => redis.proc.stop(5_000));
  const inspect = await openRedisClient(redis.url);
  onCleanup('redis client', async () => {
    await deletePrefix(inspect, REDIS_PREFIX);
    inspect.destroy();
  });
  const versions = await serverVersions(inspect);
  results.meta.versions = versions;
  log(`postgres ${versions.postgres}, redis ${versions.redis} (private, ${redis.url}), node ${process.version}`);
  const agentdDb = await createDatabase(ADMIN_DB_URL, 'agentd');
  ourMarkers.push(agentdDb.name);
  const agentdPostgres = postgresPidsOf([agentdDb.name]);
  onCleanup(`drop database ${agentdDb.name}`, () => agentdDb.drop());
  const status = sqlStatusCounter(agentdDb.url);
  onCleanup('status counter', () => status.close());

  const agentdEnv = (instance: string): Record<string, string> => ({
    DATABASE_URL: agentdDb.url,
    REDIS_URL: redis.url,
    REDIS_KEY_PREFIX: REDIS_PREFIX,
    ADMIN_TOKEN,
    TIER_LIMITS,
    MAX_CONCURRENT_AGENT_RUNS: '2500',
    RUN_QUEUE_MAX: '20000',
    INSTANCE_ID: `bench-${RUN_ID}-${instance}`,
    ...agentdExtraEnv,
  });
  const spawnAgentd = async (instance: string, env = agentdEnv(instance)): Promise<AgentdProcess> => {
    const proc = await startAgentd(`agentd-${instance}`, env, {
      nodeArgs: agentdNodeArgs,
      logDir: LOG_DIR,
      ...(profile ? { profileDir: PROFILES } : {}),
    });
    onCleanup(`agentd-${instance}`, () => proc.stop());
    return proc;
  };

  // --- dispatch, admission, soak on one agentd instance ---
  if (only.has('dispatch') || only.has('admission') || only.has('soak')) {
    const main = await spawnAgentd('main');
    await autovacuumOff(agentdDb.url);
    const system = agentdSystem('agentd', main, ADMIN_TOKEN);
    if (only.has('dispatch')) {
      await attempt(
        'dispatch: agentd',
        (r) => (results.dispatch.agentd = r),
        () => runDispatch(system, { ...PLAN.dispatch, tier: 'pro' }),
      );
    }
    if (only.has('admission')) {
      const probe = keepAliveAgent(1);
      await attempt(
        'admission: agentd',
        (r) => (results.admission.agentd = r),
        () =>
          repeatAdmission(
            PLAN.passes,
            () =>
              runAdmission(system, {
                ...PLAN.admission,
                tier: 'pro',
                countStatuses: status.count,
                settleTimeoutMs: 60_000,
                postgresPids: agentdPostgres,
                sample: () => capacitySample(probe, main.url),
              }),
            async (i) => void (await pinBeforePass('admission: agentd', i, agentdDb.url)),
          ),
      );
      probe.destroy();
    }
    if (only.has('soak')) {
      await attempt(
        'soak: agentd',
        (r) => (results.soak = r),
        async () => {
          const agent = keepAliveAgent(16);
          const tokens: string[] = [];
          for (let i = 0; i < 200; i += 1) tokens.push(await system.createAccount(agent, 'pro'));
          agent.destroy();
          const onIdle = async (when: string) => {
            // A heap snapshot of the idle instance, to tell retained objects from heap headroom.
            log(`soak: heap snapshot ${when}`);
            main.child.kill('SIGUSR2');
            await new Promise((resolve) => setTimeout(resolve, 8_000));
          };
          return runSoak({
            url: main.url,
            adminToken: ADMIN_TOKEN,
            tokens,
            ...PLAN.soak,
            rss: system.rss,
            countStatuses: status.count,
            ...(profile ? { onIdle } : {}),
          });
        },
      );
    }
    await main.stop();
  }

  // --- the embedded default: PGlite and the in-process event store ---
  if (embedded && (only.has('dispatch') || only.has('admission'))) {
    const dataDir = mkdtempSync(join(os.tmpdir(), 'agentd-bench-embedded-'));
    onCleanup('embedded data dir', async () => rmSync(dataDir, { recursive: true, force: true }));
    const env: Record<string, string> = { ...agentdEnv('embedded'), DATA_DIR: dataDir };
    delete env.DATABASE_URL;
    delete env.REDIS_URL;
    delete env.REDIS_KEY_PREFIX;
    const proc = await spawnAgentd('embedded', env);
    const system = agentdSystem('agentd-embedded', proc, ADMIN_TOKEN);
    if (only.has('dispatch')) {
      await attempt(
        'dispatch: agentd embedded',
        (r) => (results.dispatch['agentd-embedded'] = r),
        () => runDispatch(system, { ...PLAN.dispatch, tier: 'pro' }),
      );
    }
    if (only.has('admission')) {
      const agent = keepAliveAgent(32);
      await attempt(
        'admission: agentd embedded',
        (r) => (results.admission['agentd-embedded'] = r),
        () =>
          runAdmission(system, {
            ...PLAN.admission,
            tier: 'pro',
            countStatuses: statusesOverHttp(agent, proc.url),
            settleTimeoutMs: 120_000,
          }),
      );
      agent.destroy();
    }
    await proc.stop();
  }

  // --- peers: queue-hop for dispatch and admission ---
  const peersWanted = !skipPeers && (only.has('dispatch') || only.has('admission') || only.has('fanout'));
  let peersReady = false;
  if (peersWanted) {
    try {
      ensurePeersInstalled(log);
      peersReady = true;
    } catch (error) {
      const message = `peers not installed: ${errorText(error)}`;
      log(message);
      results.dispatch['queue-hop'] = { error: message };
      results.dispatch.langgraph = { error: message };
    }
  }
  if (peersReady && (only.has('dispatch') || only.has('admission'))) {
    let peer: QueueHopPeer | undefined;
    let peerDb: BenchDatabase | undefined;
    try {
      peerDb = await createDatabase(ADMIN_DB_URL, 'queuehop');
      ourMarkers.push(peerDb.name);
      onCleanup(`drop database ${peerDb.name}`, () => (peerDb as BenchDatabase).drop());
      peer = await startQueueHop({ databaseUrl: peerDb.url, redisUrl: redis.url, bullPrefix: `${REDIS_PREFIX}bull`, tierLimits: TIERS });
      const started = peer;
      onCleanup('queue-hop peer', () => started.stop());
      const peerStatus = sqlStatusCounter(peerDb.url);
      onCleanup('queue-hop status counter', () => peerStatus.close());
      if (only.has('dispatch')) {
        await attempt(
          'dispatch: queue-hop',
          (r) => (results.dispatch['queue-hop'] = r),
          () => runDispatch(started.system, { ...PLAN.dispatch, tier: 'pro' }),
        );
      }
      if (only.has('admission')) {
        await attempt(
          'admission: queue-hop',
          (r) => (results.admission['queue-hop'] = r),
          () =>
            repeatAdmission(
              PLAN.passes,
              () =>
                runAdmission(started.system, {
                  ...PLAN.admission,
                  tier: 'pro',
                  countStatuses: peerStatus.count,
                  settleTimeoutMs: 60_000,
                  postgresPids: postgresPidsOf([(peerDb as BenchDatabase).name]),
                }),
              async (i) => {
                if (i === 0) await autovacuumOff((peerDb as BenchDatabase).url);
                await pinBeforePass('admission: queue-hop', i, (peerDb as BenchDatabase).url);
              },
            ),
        );
      }
    } catch (error) {
      log(`queue-hop peer could not run: ${errorText(error)}`);
      const record = { error: `queue-hop peer could not run: ${errorText(error)}` };
      if (only.has('dispatch')) results.dispatch['queue-hop'] ??= record;
      if (only.has('admission')) results.admission['queue-hop'] ??= record;
    } finally {
      await peer?.stop();
    }
  }

  // --- peers: LangGraph dev server for dispatch ---
  if (peersReady && only.has('dispatch')) {
    await attempt(
      'dispatch: langgraph',
      (r) => (results.dispatch.langgraph = r),
      async () => {
        const peer = await startLangGraph(await freePort(), 10);
        onCleanup('langgraph', () => peer.stop());
        results.meta.langgraphApiVersion = peer.version;
        try {
          return await runDispatch(peer.system, {
            warmup: PLAN.dispatch.langgraphWarmup,
            count: PLAN.dispatch.langgraphCount,
            tier: 'pro',
          });
        } finally {
          await peer.stop();
        }
      },
    );
  }

  // --- fan-out: runs on instance A, listeners on instance B ---
  if (only.has('fanout')) {
    const fanoutPair = async (label: string, onSnapshot: boolean) => {
      const writer = await spawnAgentd(`${label}-a`);
      const reader = await spawnAgentd(`${label}-b`);
      const agent = keepAliveAgent(4);
      const token = await agentdSystem('agentd', writer, ADMIN_TOKEN).createAccount(agent, 'enterprise');
      agent.destroy();
      const target: FanoutTarget = {
        system: 'agentd',
        pids: { writer: [writer.pid], reader: [reader.pid] },
        rss: { writer: () => agentdSystem('a', writer, '').rss(), reader: () => agentdSystem('b', reader, '').rss() },
        closeIsEnd: false,
        extraEventsPerRun: 2,
        redis: { client: inspect, writerId: writer.instanceId, readerId: reader.instanceId, serverPid: redisPid },
        postgresPids: agentdPostgres,
        async createRun(http, _index, events, intervalMs) {
          const run = await requestJson<{ id: string }>(http, 'POST', `${writer.url}/v1/runs`, 202, {
            token,
            body: { agent: 'simulate', input: { events, interval_ms: intervalMs, payload_bytes: 16 } },
          });
          return { url: `${reader.url}/v1/runs/${run.id}/events`, token };
        },
      };
      const snapshot = onSnapshot && profile ? () => writer.child.kill('SIGUSR2') && reader.child.kill('SIGUSR2') : undefined;
      return { writer, reader, target, snapshot, warm: () => warmUp(writer, reader, token) };
    };
    /**
     * PLAN.passes passes of one fan-out, each on a fresh instance pair over a pinned database
     * (emptied, vacuumed, checkpointed) with the same warm-up; the step's result is the median pass.
     */
    const fanoutPasses = (step: string, pairName: string, heapSnapshot: boolean, runs: number, listenersPerRun: number) =>
      repeat(PLAN.passes, async (i): Promise<FanoutPass> => {
        // The previous pass's streams (kept for their TTL) would only raise Redis's memory baseline.
        await deletePrefix(inspect, REDIS_PREFIX);
        const pinning = await pinBeforePass(step, i, agentdDb.url, true);
        const pair = await fanoutPair(PLAN.passes === 1 ? pairName : `${pairName}-p${i + 1}`, heapSnapshot && i === 0);
        try {
          await autovacuumOff(agentdDb.url);
          await pair.warm();
          const before = snapshot(ourMarkers);
          const result = await runFanout(pair.target, {
            runs,
            listenersPerRun,
            ratePerRun: RATE_PER_RUN,
            durationS: PLAN.fanout.durationS,
            ...(pair.snapshot ? { onHeapSnapshot: pair.snapshot } : {}),
          });
          const load = cpuBetween(before, snapshot(ourMarkers));
          results.load[`${step} pass ${i + 1}`] = load;
          log(`${step}: pass ${i + 1}/${PLAN.passes}: ${describePass(result)}; other processes ${load.others} cores`);
          return { ...result, pinning };
        } finally {
          await Promise.all([pair.writer.stop(), pair.reader.stop()]);
        }
      }).then(combineFanoutPasses);
    const snapshotSize = PLAN.fanout.sizes.includes(1_000) ? 1_000 : Math.max(...PLAN.fanout.sizes);
    for (const n of PLAN.fanout.sizes) {
      const step = `fan-out: agentd N=${n}`;
      await attempt(
        step,
        (r) => (results.fanout[`agentd-${n}`] = r),
        () => fanoutPasses(step, `fanout${n}`, n === snapshotSize, n, 1),
      );
    }
    const listeners = PLAN.fanout.single.listeners;
    if (!flag('no-single')) {
      const step = `fan-out: agentd 1 run × ${listeners} listeners`;
      await attempt(
        step,
        (r) => (results.fanout[`agentd-1x${listeners}`] = r),
        () => fanoutPasses(step, 'single', false, 1, listeners),
      );
    }
    if (peersReady) {
      for (const n of PLAN.fanout.langgraphSizes) {
        await attempt(
          `fan-out: langgraph N=${n}`,
          (r) => (results.fanout[`langgraph-${n}`] = r),
          async () => {
            const peer: LangGraphPeer = await startLangGraph(await freePort(), n);
            onCleanup('langgraph', () => peer.stop());
            results.meta.langgraphApiVersion = peer.version;
            try {
              const pids = peer.pids();
              const target: FanoutTarget = {
                system: 'langgraph',
                pids: { writer: pids, reader: pids },
                rss: { writer: () => peer.system.rss(), reader: () => 0 },
                closeIsEnd: true,
                extraEventsPerRun: 0,
                createRun: (_http, _index, events, intervalMs) => Promise.resolve(langGraphSimulate(peer.system.url, events, intervalMs)),
              };
              return await runFanout(target, { runs: n, listenersPerRun: 1, ratePerRun: RATE_PER_RUN, durationS: PLAN.fanout.durationS });
            } finally {
              await peer.stop();
            }
          },
        );
      }
    }
  }

  results.meta.elapsedS = Math.round((Date.now() - started) / 1000);
}

/** Pins the bench's database `url` before pass `index` of `step` (bench/lib/pinning.ts), and logs what it took. */
async function pinBeforePass(step: string, index: number, url: string, truncate = false): Promise<PinReport> {
  const report = await pinDatabase(url, { truncate });
  log(
    `${step}: pass ${index + 1}/${PLAN.passes}: database pinned (${truncate ? `${report.truncatedTables} tables truncated, ` : ''}VACUUM ANALYZE ${report.vacuumMs} ms, CHECKPOINT ${report.checkpointMs} ms)`,
  );
  return report;
}

/** The live use of agentd's limiters, for the admission's maxima. */
async function capacitySample(agent: ReturnType<typeof keepAliveAgent>, url: string): Promise<Record<string, number>> {
  const c = await requestJson<{
    runs: { in_use: number; queued: number };
    db_pool: { in_use: number; waiting: number; max: number };
    redis: { in_flight_ops: number };
  }>(agent, 'GET', `${url}/v1/admin/capacity`, 200, { token: ADMIN_TOKEN });
  return {
    'db_pool.max': c.db_pool.max,
    'db_pool.in_use': c.db_pool.in_use,
    'db_pool.waiting': c.db_pool.waiting,
    'runs.in_use': c.runs.in_use,
    'runs.queued': c.runs.queued,
    'redis.in_flight_ops': c.redis.in_flight_ops,
  };
}

/**
 * The fixed warm-up of every fan-out pass: WARMUP.rounds rounds of runs with one listener each
 * through both instances (10,000 events per instance, well past the few thousand calls after
 * which V8 optimizes a hot function), so the measured runs meet optimized code, open pools and
 * grown heaps, the same in every pass.
 */
const WARMUP = { rounds: 2, runs: 50, events: 100, intervalMs: 20 };

async function warmUp(writer: AgentdProcess, reader: AgentdProcess, token: string): Promise<void> {
  const agent = keepAliveAgent(WARMUP.runs);
  try {
    for (let round = 0; round < WARMUP.rounds; round += 1) {
      const ids = await Promise.all(
        Array.from(
          { length: WARMUP.runs },
          async () =>
            (
              await requestJson<{ id: string }>(agent, 'POST', `${writer.url}/v1/runs`, 202, {
                token,
                body: { agent: 'simulate', input: { events: WARMUP.events, interval_ms: WARMUP.intervalMs, payload_bytes: 16 } },
              })
            ).id,
        ),
      );
      await Promise.all(ids.map((id) => request(agent, 'GET', `${reader.url}/v1/runs/${id}/events`, { token, timeoutMs: 30_000 })));
    }
  } finally {
    agent.destroy();
  }
}

async function serverVersions(redis: RedisClient): Promise<{ postgres: string; redis: string; synchronousCommit: string }> {
  const sql = postgres(ADMIN_DB_URL, { max: 1, onnotice: () => undefined });
  try {
    const [row] = await sql<
      Array<{ version: string; sc: string }>
    >`SELECT current_setting('server_version') AS version, current_setting('synchronous_commit') AS sc`;
    const info = await redis.sendCommand<string>(['INFO', 'server']);
    return { postgres: row?.version ?? '?', redis: /redis_version:(\S+)/.exec(info)?.[1] ?? '?', synchronousCommit: row?.sc ?? '?' };
  } finally {
    await sql.end({ timeout: 2 });
  }
}

/** Versions of what is measured: agentd's own dependencies and the peers'. */
function packageVersions(): Record<string, string> {
  const versions: Record<string, string> = {};
  const read = (dir: string, name: string) => {
    try {
      versions[name] = (JSON.parse(readFileSync(join(dir, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      // not installed (yet)
    }
  };
  for (const name of ['express', 'postgres', 'redis', 'zod', 'winston']) read(ROOT, name);
  const peers = join(ROOT, 'bench', 'peers');
  for (const name of [
    'bullmq',
    'ioredis',
    '@langchain/langgraph-cli',
    '@langchain/langgraph-api',
    '@langchain/langgraph',
    '@langchain/core',
  ])
    read(peers, name);
  return versions;
}

function readGitHead(): string | null {
  try {
    const head = readFileSync(join(ROOT, '.git', 'HEAD'), 'utf8').trim();
    if (!head.startsWith('ref: ')) return head;
    return readFileSync(join(ROOT, '.git', head.slice(5)), 'utf8').trim();
  } catch {
    return null;
  }
}

// --- the table ---

const num = (value: unknown): number | null => (typeof value === 'number' && Number.isFinite(value) ? value : null);
function ok<T extends object>(value: T | { error: string } | undefined): T | undefined {
  return value === undefined || 'error' in value ? undefined : value;
}
function errOf(value: object | undefined): string | null {
  return value !== undefined && 'error' in value ? `error: ${String((value as { error: string }).error).slice(0, 120)}` : null;
}

/** The largest value of `pick` over a step's passes (the step itself when it ran once). */
function worstPass(x: FanoutResult, pick: (pass: FanoutResult) => number): number {
  const passes: readonly FanoutResult[] = 'passes' in x ? (x as FanoutPasses).passes : [x];
  return Math.max(...passes.map(pick));
}

/** Shows the last row's agentd figure as the median with the passes' range and spread. */
function withSpread(rows: Row[], spread: Spread | undefined, unit: string, digits: number): void {
  const last = rows[rows.length - 1];
  if (last === undefined || spread === undefined) return;
  rows[rows.length - 1] = { ...last, display: formatSpread(spread, unit, digits) };
}

function buildRows(): Row[] {
  const rows: Row[] = [];
  const d = results.dispatch;
  const peer = (r: DispatchResult | { error: string } | undefined, pick: (x: DispatchResult) => number) => {
    if (r === undefined) return undefined;
    const good = ok(r);
    return good === undefined ? errOf(r) : num(pick(good));
  };
  if (only.has('dispatch')) {
    const a = ok(d.agentd);
    const line = (figure: string, pick: (x: DispatchResult) => number, target?: Row['target']) =>
      rows.push({
        scenario: 'dispatch',
        figure,
        unit: 'ms',
        better: 'lower',
        ...(target === undefined ? {} : { target }),
        agentd: a === undefined ? errOf(d.agentd) : num(pick(a)),
        peers: { queueHop: peer(d['queue-hop'], pick) ?? null, langgraph: peer(d.langgraph, pick) ?? null },
      });
    line('first event p50', (x) => x.firstEventMs.p50, { op: '<=', value: 2 });
    line('first event p99', (x) => x.firstEventMs.p99, { op: '<=', value: 10 });
    line('response headers p50 (run admitted)', (x) => x.headersMs.p50);
    line('first output event p50', (x) => x.firstOutputMs.p50);
    line('first output event p99', (x) => x.firstOutputMs.p99);
    const e = d['agentd-embedded'];
    if (e !== undefined) {
      rows.push({
        scenario: 'dispatch (embedded)',
        figure: 'first event p50',
        unit: 'ms',
        better: 'lower',
        target: { op: '<=', value: 2 },
        agentd: ok(e) ? num(ok(e)!.firstEventMs.p50) : errOf(e),
      });
      rows.push({
        scenario: 'dispatch (embedded)',
        figure: 'first event p99',
        unit: 'ms',
        better: 'lower',
        target: { op: '<=', value: 10 },
        agentd: ok(e) ? num(ok(e)!.firstEventMs.p99) : errOf(e),
      });
    }
  }
  if (only.has('admission')) {
    const ad = results.admission;
    const pick = (r: AdmissionResult | { error: string } | undefined, f: (x: AdmissionResult) => number | string) => {
      if (r === undefined) return undefined;
      const good = ok(r);
      return good === undefined ? errOf(r) : f(good);
    };
    const line = (
      scenario: string,
      key: string,
      figure: string,
      unit: string,
      f: (x: AdmissionResult) => number | string,
      better?: 'lower' | 'higher',
      target?: Row['target'],
      withPeer = true,
    ) =>
      rows.push({
        scenario,
        figure,
        unit,
        ...(better === undefined ? {} : { better }),
        ...(target === undefined ? {} : { target }),
        agentd: pick(ad[key], f) ?? null,
        ...(withPeer ? { peers: { queueHop: pick(ad['queue-hop'], f) ?? null } } : {}),
      });
    line('admission', 'agentd', '202s per second (median pass)', 'runs/s', (x) => x.runsPerSecond, 'higher', { op: '>=', value: 3000 });
    withSpread(rows, ok(ad.agentd)?.spread?.runsPerSecond, 'runs/s', 0);
    line('admission', 'agentd', '202s per second, every pass', '', (x) =>
      (x.passes ?? [x.runsPerSecond]).map((v) => v.toLocaleString('en-US')).join(' / '),
    );
    line('admission', 'agentd', 'POST latency p99', 'ms', (x) => x.latencyMs.p99, 'lower');
    line('admission', 'agentd', 'all runs completed', '', (x) =>
      x.allCompleted ? 'yes' : `no: ${JSON.stringify(x.statuses)} ${JSON.stringify(x.rejected)}`,
    );
    line(
      'admission',
      'agentd',
      'CPU cores: server / postgres / bench client',
      '',
      (x) => `${x.cpu.server} / ${x.cpu.postgres} / ${x.cpu.client}`,
    );
    // Server-side CPU (agentd + Postgres, not the bench's client) per admitted run: what a change to admission is judged by.
    line(
      'admission',
      'agentd',
      'server CPU per admitted run (agentd + Postgres)',
      'µs',
      (x) => x.spread?.serverCpuPerRunUs.median ?? x.serverCpuPerRunUs,
      'lower',
      undefined,
      false,
    );
    withSpread(rows, ok(ad.agentd)?.spread?.serverCpuPerRunUs, 'µs', 0);
    if (ad['agentd-embedded'] !== undefined) {
      line(
        'admission (embedded)',
        'agentd-embedded',
        '202s per second',
        'runs/s',
        (x) => x.runsPerSecond,
        'higher',
        { op: '>=', value: 3000 },
        false,
      );
      line(
        'admission (embedded)',
        'agentd-embedded',
        'all runs completed',
        '',
        (x) => (x.allCompleted ? 'yes' : `no: ${JSON.stringify(x.statuses)}`),
        undefined,
        undefined,
        false,
      );
    }
  }
  if (only.has('fanout')) {
    const f = results.fanout;
    const keys = [
      ...PLAN.fanout.sizes.map((n) => [`N=${n}`, `agentd-${n}`, `langgraph-${n}`] as const),
      [`1 run × ${PLAN.fanout.single.listeners}`, `agentd-1x${PLAN.fanout.single.listeners}`, ''] as const,
    ];
    const largest = Math.max(...PLAN.fanout.sizes);
    for (const [label, key, lgKey] of keys) {
      const r = f[key];
      const a = ok(r);
      const lg = lgKey === '' ? undefined : f[lgKey];
      const lgOk = ok(lg);
      const scenario = `fan-out ${label}`;
      const isTargetSize = key === `agentd-${largest}`;
      const val = (x: FanoutResult | undefined, pick: (x: FanoutResult) => number | string | undefined, raw: object | undefined) =>
        x === undefined ? errOf(raw) : (pick(x) ?? null);
      const line = (
        figure: string,
        unit: string,
        pick: (x: FanoutResult) => number | string | undefined,
        better?: 'lower' | 'higher',
        target?: Row['target'],
        peerToo = true,
        display?: (x: FanoutPasses) => string,
      ) =>
        rows.push({
          scenario,
          figure,
          unit,
          ...(better === undefined ? {} : { better }),
          ...(target === undefined ? {} : { target }),
          agentd: val(a, pick, r),
          ...(display !== undefined && a !== undefined && 'spread' in a ? { display: display(a) } : {}),
          ...(peerToo && lg !== undefined ? { peers: { langgraph: val(lgOk, pick, lg) } } : {}),
        });
      if (r === undefined) continue;
      // The key figures: the median over the passes, with their range and spread (bench/README.md, "Repetitions").
      line('events delivered/s (offered)', 'ev/s', (x) =>
        'spread' in x
          ? `${formatSpread((x as FanoutPasses).spread.deliveredPerSecond, '')}; offered ${x.offeredPerSecond.toLocaleString('en-US')}`
          : `${Math.round(x.deliveredPerSecond).toLocaleString('en-US')} (${x.offeredPerSecond.toLocaleString('en-US')})`,
      );
      line('delivery latency p50', 'ms', (x) => x.listeners.latencySteady.p50, 'lower');
      line(
        'delivery latency p99',
        'ms',
        (x) => ('spread' in x ? (x as FanoutPasses).spread.latencyP99Ms.median : x.listeners.latencySteady.p99),
        'lower',
        isTargetSize ? { op: '<=', value: 50 } : undefined,
        true,
        (x) => formatSpread(x.spread.latencyP99Ms, 'ms', x.spread.latencyP99Ms.median < 10 ? 1 : 0),
      );
      // Any pass's loss counts: a lost event is a defect, not noise.
      line('lost events', '', (x) => worstPass(x, (p) => p.listeners.lost), undefined, { op: '==', value: 0 });
      line('duplicated events', '', (x) => worstPass(x, (p) => p.listeners.duplicates), undefined, { op: '==', value: 0 });
      line(
        'Redis connections per instance (A / B)',
        '',
        (x) => (x.redisConnections === undefined ? undefined : `${x.redisConnections.writer} / ${x.redisConnections.reader}`),
        undefined,
        undefined,
        false,
      );
      if (a?.redisConnections !== undefined) {
        rows.push({
          scenario,
          figure: 'Redis connections, max per instance',
          unit: '',
          target: { op: '<=', value: 4 },
          agentd: Math.max(a.redisConnections.writer, a.redisConnections.reader),
        });
      }
      line('Redis commands per event', '', (x) => x.redisCommands?.perEvent, undefined, { op: '<=', value: 1.2 }, false);
      line('peak RSS (all server processes)', 'MB', (x) => mb(x.rss.peakBytes), 'lower');
      line('Redis memory per run (peak used_memory over baseline)', 'KB', (x) =>
        x.redisMemory === undefined ? undefined : round(x.redisMemory.perRunBytes / 1024, 1),
      );
      if (key.includes('1x')) line('RSS per listener', 'KB', (x) => round(x.rss.perListenerBytes / 1024, 1), 'lower');
      else line('RSS per concurrent run incl. listener', 'KB', (x) => round(x.rss.perRunBytes / 1024, 1), 'lower', { op: '<=', value: 40 });
      // Server-side CPU (both instances, Redis, Postgres; not the listener process) per delivered event.
      line(
        'server CPU per delivered event (A + B + Redis + Postgres)',
        'µs',
        (x) => ('spread' in x ? (x as FanoutPasses).spread.serverCpuPerEventUs.median : x.serverCpuPerEventUs),
        'lower',
        key === 'agentd-1000' ? { op: '<=', value: 40 } : undefined,
        true,
        (x) => formatSpread(x.spread.serverCpuPerEventUs, 'µs', x.spread.serverCpuPerEventUs.median < 100 ? 1 : 0),
      );
      line(
        'CPU cores: server A / B / redis / postgres; listener process',
        '',
        (x) => `${x.cpu.writer} / ${x.cpu.reader} / ${x.cpu.redis ?? '—'} / ${x.cpu.postgres}; ${x.cpu.listenerProcess}`,
        undefined,
        undefined,
        true,
      );
    }
  }
  const s = results.soak;
  if (s !== undefined) {
    const good = ok(s);
    rows.push({
      scenario: 'soak',
      figure: `${PLAN.soak.runs.toLocaleString('en-US')} mixed runs: statuses as expected`,
      unit: '',
      agentd: good ? (good.statusesMatch ? 'yes' : `no: ${JSON.stringify(good.statuses)}`) : errOf(s),
    });
    rows.push({
      scenario: 'soak',
      figure: 'runs per second (mixed, 64 clients)',
      unit: 'runs/s',
      agentd: good ? good.runsPerSecond : errOf(s),
    });
    rows.push({
      scenario: 'soak',
      figure: 'every limiter at 0 afterwards',
      unit: '',
      agentd: good ? (good.limitersAtZero ? 'yes' : `no: ${JSON.stringify(good.limitersDetail)}`) : errOf(s),
    });
    rows.push({
      scenario: 'soak',
      figure: 'RSS after vs after warm-up (30 s idle)',
      unit: '%',
      target: { op: '<=', value: 10 },
      agentd: good ? round(good.rssGrowth * 100, 1) : errOf(s),
    });
    rows.push({
      scenario: 'soak',
      figure: 'RSS after warm-up → after soak (30 s idle)',
      unit: '',
      agentd: good ? `${mb(good.rssAfterWarmupBytes)} → ${mb(good.rssAfterBytes)} MB (peak ${mb(good.rssPeakBytes)})` : errOf(s),
    });
    rows.push({
      scenario: 'soak',
      figure: 'RSS after warm-up → after soak (2 s idle)',
      unit: '',
      agentd: good ? `${mb(good.rssAfterWarmupSoonBytes)} → ${mb(good.rssAfterSoonBytes)} MB` : errOf(s),
    });
  }
  return rows;
}

async function finish(): Promise<void> {
  for (const cleanup of cleanups.reverse()) {
    try {
      await cleanup.run();
    } catch (error) {
      log(`cleanup ${cleanup.what} failed: ${errorText(error)}`);
    }
  }
  if (profile) {
    const files = readdirSync(PROFILES).filter((f) => f.endsWith('.cpuprofile') && statSync(join(PROFILES, f)).mtimeMs >= BENCH_STARTED_MS);
    for (const file of files.sort()) {
      try {
        const summary = summarizeProfile(join(PROFILES, file));
        results.profiles.push(summary);
        log(formatSummary(summary));
      } catch (error) {
        log(`profile ${file}: ${errorText(error)}`);
      }
    }
  }
  results.rows = buildRows();
  const json = JSON.stringify(results, null, 2);
  writeFileSync(join(RESULTS, 'latest.json'), json);
  writeFileSync(join(RESULTS, 'latest.md'), `${markdownTable(results.rows)}\n`);
  console.log(`\n${textTable(results.rows)}\n`);
  appendFileSync(LOG_FILE, `\n${textTable(results.rows)}\n`);
  const missed = results.rows.filter((r) => targetMet(r) === false);
  console.log(
    `targets: ${results.rows.filter((r) => targetMet(r) === true).length} met, ${missed.length} missed${missed.length ? `: ${missed.map((r) => `${r.scenario} ${r.figure}`).join('; ')}` : ''}`,
  );
  console.log(`ratios in parentheses: how many times better agentd is than the peer (>1 = agentd ahead)`);
  console.log(`wrote bench/results/latest.json and latest.md (${results.meta.elapsedS ?? '?'} s)`);
}

let exitCode = 0;
let interrupted = false;
process.on('SIGINT', () => {
  if (interrupted) process.exit(130);
  interrupted = true;
  log('interrupted: cleaning up (Ctrl-C again to exit at once)');
  void finish().finally(() => process.exit(130));
});
try {
  await main();
} catch (error) {
  exitCode = 1;
  log(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  results.meta.error = errorText(error);
}
if (!interrupted) {
  await finish();
  process.exit(exitCode);
}
