import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/config.js';
import { createLogger } from '../../src/observability/logger.js';
import { type RunningServer, startServer } from '../../src/app/server.js';
import { type JsonResponse, request, type RequestOptions } from './http.js';
import { randomTag } from './ids.js';
import { createTestDatabase } from './test-database.js';
import { waitFor } from './wait-for.js';

export type Storage = 'postgres' | 'pglite';
export const STORAGES: readonly Storage[] = ['postgres', 'pglite'];
export const ADMIN_TOKEN = 'test-admin-token-0123456789abcdef';

/** A fresh isolated storage for one test file: its own Postgres database, or its own PGlite directory. */
export async function createStorageEnv(storage: Storage): Promise<{ env: Record<string, string>; cleanup(): Promise<void> }> {
  if (storage === 'postgres') {
    const database = await createTestDatabase();
    return { env: { DATABASE_URL: database.url }, cleanup: () => database.drop() };
  }
  const dir = await mkdtemp(join(tmpdir(), 'agentd-test-'));
  return { env: { DATA_DIR: dir }, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export interface TestAgentd {
  readonly url: string;
  readonly server: RunningServer;
  /** An admin request. */
  admin<T = any>(method: string, path: string, options?: RequestOptions): Promise<JsonResponse<T>>;
  /** A request with an API key. */
  as<T = any>(apiKey: string, method: string, path: string, options?: RequestOptions): Promise<JsonResponse<T>>;
  createAccount(tier?: string, name?: string): Promise<{ id: string; apiKey: string; prefix: string }>;
  /** Waits until the run reaches a final status and returns it. */
  waitForEnd(apiKey: string, runId: string): Promise<any>;
  /** Waits until every limiter of this instance is back at zero. */
  waitForIdle(): Promise<any>;
  close(): Promise<void>;
}

/** Starts agentd in this process on a loopback port with the given storage and extra env. */
export async function startAgentd(storage: Storage, env: Record<string, string> = {}): Promise<TestAgentd> {
  const store = await createStorageEnv(storage);
  const config = loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    ADMIN_TOKEN,
    LOG_LEVEL: 'error',
    INSTANCE_ID: `test-${process.pid}-${randomTag(3)}`,
    SHUTDOWN_GRACE_MS: '2000',
    ...store.env,
    ...env,
  });
  const server = await startServer(config, createLogger('error'));
  const url = server.url;
  const agentd: TestAgentd = {
    url,
    server,
    admin: (method, path, options = {}) => request(url, method, path, { token: ADMIN_TOKEN, ...options }),
    as: (apiKey, method, path, options = {}) => request(url, method, path, { token: apiKey, ...options }),
    async createAccount(tier = 'pro', name = 'acme') {
      const res = await agentd.admin('POST', '/v1/admin/accounts', { body: { name, tier } });
      if (res.status !== 201) throw new Error(`account creation failed: ${res.status} ${res.text}`);
      return { id: res.body.id, apiKey: res.body.api_key, prefix: res.body.key_prefix };
    },
    waitForEnd: (apiKey, runId) =>
      waitFor(
        async () => {
          const res = await agentd.as(apiKey, 'GET', `/v1/runs/${runId}`);
          return ['queued', 'running'].includes(res.body.status) ? undefined : res.body;
        },
        { what: `run ${runId} to end` },
      ),
    waitForIdle: () =>
      waitFor(
        async () => {
          const res = await agentd.admin('GET', '/v1/admin/capacity');
          const { runs, db_pool: pool, accounts, sse, llm, archive } = res.body;
          const llmLimiters = [llm.global, ...Object.values(llm.providers)] as Array<{ in_use: number; queued: number }>;
          const idle =
            llmLimiters.every((limiter) => limiter.in_use === 0 && limiter.queued === 0) &&
            runs.in_use === 0 &&
            runs.queued === 0 &&
            pool.in_use === 0 &&
            pool.waiting === 0 &&
            accounts.leases === 0 &&
            sse.listeners === 0 &&
            archive.pending_events === 0;
          return idle ? res.body : undefined;
        },
        { what: 'every limiter at zero' },
      ),
    async close() {
      await server.close();
      await store.cleanup();
    },
  };
  return agentd;
}
