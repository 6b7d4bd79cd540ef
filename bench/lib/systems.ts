import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import type http from 'node:http';
import { join } from 'node:path';
import { request, requestJson } from './http.js';
import { type AgentdProcess, type ManagedProcess, ROOT, rssBytes, startProcess } from './procs.js';
import type { SseEvent, SseRequest } from './sse.js';

export const PEERS_DIR = join(ROOT, 'bench', 'peers');

/** What the scenarios need to know about a server under test. */
export interface System {
  readonly name: string;
  readonly url: string;
  /** Processes whose RSS counts for this system. */
  rss(): number;
  /** The system's server processes (for CPU per process). */
  pids(): number[];
  /** An account of `tier`; returns its API key (LangGraph has none: empty string). */
  createAccount(agent: http.Agent, tier: string): Promise<string>;
  /** The streaming request that creates an echo run and streams its events. */
  echoStream(token: string, input: unknown): SseRequest;
  /** The agent's own output event (not the runtime's status/metadata events). */
  isOutput(event: SseEvent): boolean;
}

export function agentdSystem(name: string, proc: AgentdProcess, adminToken: string): System {
  return {
    name,
    url: proc.url,
    // With WORKERS > 1, the primary and its workers.
    rss: () => processTree(proc.pid).reduce((sum, pid) => sum + rssBytes(pid), 0),
    pids: () => processTree(proc.pid),
    async createAccount(agent, tier) {
      const account = await requestJson<{ api_key: string }>(agent, 'POST', `${proc.url}/v1/admin/accounts`, 201, {
        token: adminToken,
        body: { name: `bench-${tier}`, tier },
      });
      return account.api_key;
    },
    echoStream: (token, input) => ({ url: `${proc.url}/v1/runs/stream`, method: 'POST', token, body: { agent: 'echo', input } }),
    isOutput: (event) => event.event === 'message',
  };
}

/** npm ci (or install) in bench/peers when its node_modules is missing or older than its lockfile. */
export function ensurePeersInstalled(log: (line: string) => void): void {
  const marker = join(PEERS_DIR, 'node_modules', '.package-lock.json');
  if (existsSync(marker)) return;
  const npm = (command: 'ci' | 'install') =>
    spawnSync('npm', [command, '--no-audit', '--no-fund'], { cwd: PEERS_DIR, stdio: ['ignore', 'inherit', 'inherit'] }).status;
  log('installing the peers into bench/peers (npm ci) ...');
  if (npm('ci') === 0) return;
  // `npm ci` refuses a lockfile that lacks optional platform packages a registry mirror does
  // not carry (e.g. @tailwindcss/oxide-win32-*); `npm install` installs the same locked versions.
  log('npm ci refused the lockfile; installing the locked versions with npm install ...');
  const status = npm('install');
  if (status !== 0) throw new Error(`npm install in bench/peers failed with exit code ${status}`);
}

export interface QueueHopPeer {
  readonly system: System;
  readonly front: ManagedProcess;
  readonly worker: ManagedProcess;
  stop(): Promise<void>;
}

/** The queue-hop peer: Express front and BullMQ Worker, each its own process. */
export async function startQueueHop(options: {
  databaseUrl: string;
  redisUrl: string;
  bullPrefix: string;
  tierLimits: Record<string, number>;
}): Promise<QueueHopPeer> {
  const env = {
    PATH: process.env.PATH ?? '',
    DATABASE_URL: options.databaseUrl,
    REDIS_URL: options.redisUrl,
    BULL_PREFIX: options.bullPrefix,
    TIER_LIMITS_JSON: JSON.stringify(options.tierLimits),
    NODE_ENV: 'production',
  };
  const dir = join(PEERS_DIR, 'queue-hop');
  const { proc: front, value: url } = await startProcess('queue-hop front', process.execPath, ['front.mjs'], {
    cwd: dir,
    env,
    ready: (line) => {
      try {
        const entry = JSON.parse(line) as { message?: string; url?: string };
        return entry.message === 'listening' ? entry.url : undefined;
      } catch {
        return undefined;
      }
    },
  });
  let worker: ManagedProcess;
  try {
    ({ proc: worker } = await startProcess('queue-hop worker', process.execPath, ['worker.mjs'], {
      cwd: dir,
      env,
      ready: (line) => (line.includes('worker ready') ? true : undefined),
    }));
  } catch (error) {
    await front.stop();
    throw error;
  }
  const system: System = {
    name: 'queue-hop',
    url,
    rss: () => rssBytes(front.pid) + rssBytes(worker.pid),
    pids: () => [front.pid, worker.pid],
    async createAccount(agent, tier) {
      const account = await requestJson<{ api_key: string }>(agent, 'POST', `${url}/admin/accounts`, 201, {
        body: { name: `bench-${tier}`, tier },
      });
      return account.api_key;
    },
    echoStream: (token, input) => ({ url: `${url}/v1/runs/stream`, method: 'POST', token, body: { agent: 'echo', input } }),
    isOutput: (event) => event.event === 'message',
  };
  return {
    system,
    front,
    worker,
    async stop() {
      await Promise.all([front.stop(5_000), worker.stop(5_000)]);
    },
  };
}

/** A process and all its descendants. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(parent, [...(children.get(parent) ?? []), Number(entry)]);
    } catch {
      // the process ended while we looked
    }
  }
  const pids = [root];
  for (let i = 0; i < pids.length; i++) pids.push(...(children.get(pids[i] as number) ?? []));
  return pids;
}

/** PIDs of every process in a process group (the LangGraph CLI starts its server as a child). */
export function groupPids(pgid: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid) pids.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return pids;
}

const groupRss = (pgid: number): number => groupPids(pgid).reduce((sum, pid) => sum + rssBytes(pid), 0);

export interface LangGraphPeer {
  readonly system: System;
  /** The CLI and the server it started. */
  pids(): number[];
  readonly version: string;
  stop(): Promise<void>;
}

/** `langgraphjs dev --no-browser --no-reload` on a loopback port, in its own process group. */
export async function startLangGraph(port: number, jobsPerWorker: number): Promise<LangGraphPeer> {
  const cli = join(PEERS_DIR, 'node_modules', '@langchain', 'langgraph-cli', 'dist', 'cli', 'cli.mjs');
  const args = [
    cli,
    'dev',
    '--no-browser',
    '--no-reload',
    '--port',
    String(port),
    '--host',
    '127.0.0.1',
    '--n-jobs-per-worker',
    String(jobsPerWorker),
    '--config',
    'langgraph.json',
  ];
  const child = spawn(process.execPath, args, {
    cwd: join(PEERS_DIR, 'langgraph'),
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      LANGGRAPH_CLI_NO_ANALYTICS: '1',
      LANGSMITH_TRACING: 'false',
      NO_COLOR: '1',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const pgid = child.pid ?? -1;
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`langgraphjs dev did not start in 90 s:\n${output.slice(-3000)}`)), 90_000);
    const onData = (chunk: string) => {
      output = (output + chunk).slice(-20_000);
      if (/Server running at/.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.setEncoding('utf8').on('data', onData);
    child.stderr?.setEncoding('utf8').on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`langgraphjs dev exited with ${code}:\n${output.slice(-3000)}`));
    });
  });
  const stop = async () => {
    try {
      process.kill(-pgid, 'SIGTERM');
    } catch {
      return; // already gone
    }
    const timer = setTimeout(() => {
      try {
        process.kill(-pgid, 'SIGKILL');
      } catch {
        // gone
      }
    }, 5_000);
    await exited;
    clearTimeout(timer);
    // Children of the CLI may outlive it for a moment: make sure the group is gone.
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // gone
    }
  };
  try {
    await ready;
  } catch (error) {
    await stop();
    throw error;
  }
  const url = `http://127.0.0.1:${port}`;
  const version = (
    JSON.parse(readFileSync(join(PEERS_DIR, 'node_modules', '@langchain', 'langgraph-api', 'package.json'), 'utf8')) as { version: string }
  ).version;
  const system: System = {
    name: 'langgraph',
    url,
    rss: () => groupRss(pgid),
    pids: () => groupPids(pgid),
    createAccount: () => Promise.resolve(''),
    echoStream: (_token, input) => ({
      url: `${url}/runs/stream`,
      method: 'POST',
      body: { assistant_id: 'bench', input: { input: { mode: 'echo', input } }, stream_mode: ['custom'] },
    }),
    isOutput: (event) => event.event === 'custom',
  };
  return { system, version, stop, pids: () => groupPids(pgid) };
}

/** The LangGraph streaming request for one `simulate`-like run. */
export function langGraphSimulate(url: string, events: number, intervalMs: number): SseRequest {
  return {
    url: `${url}/runs/stream`,
    method: 'POST',
    body: {
      assistant_id: 'bench',
      input: { input: { mode: 'simulate', events, interval_ms: intervalMs, payload_bytes: 16 } },
      stream_mode: ['custom'],
    },
  };
}

/** Waits until GET `url` answers 200. */
export async function waitHttpOk(agent: http.Agent, url: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if ((await request(agent, 'GET', url, { timeoutMs: 2_000 })).status === 200) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer 200 in ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
