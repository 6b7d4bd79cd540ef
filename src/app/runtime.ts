import { type Config, loadConfig } from '../config/config.js';
import type { Agent, Logger } from '../domain/index.js';
import { createLogger } from '../observability/logger.js';
import { type RunningServer, startServer } from './server.js';

/** A setting of createRuntime's `config`: the value an environment variable of that name would hold. */
export type RuntimeSetting = string | number | boolean | undefined;

export interface RuntimeOptions {
  /** Agents made with defineAgent, besides the built-in ones and AGENTS_DIR's; a name used twice stops listen(). */
  readonly agents?: readonly Agent[];
  /** Settings by variable name (`{ PORT: 3000, DATABASE_URL: '…' }`), over `env`; see .env.example. */
  readonly config?: Readonly<Record<string, RuntimeSetting>>;
  /** Default: process.env. Pass `{}` to use `config` and the defaults only. */
  readonly env?: NodeJS.ProcessEnv;
  /** Default: a logger at LOG_LEVEL in LOG_FORMAT on stdout. */
  readonly logger?: Logger;
}

/** agentd in this process, not yet listening. */
export interface Runtime {
  readonly config: Config;
  /** Opens the database and the event store, loads the agents, listens; resolves with the URL. Idempotent. */
  listen(): Promise<{ readonly url: string; readonly instanceId: string }>;
  /** Drains the runs (SHUTDOWN_GRACE_MS), then closes everything, the offload threads too; idempotent. */
  close(): Promise<void>;
}

/**
 * agentd as a library: the same server as `npm start` (one process; WORKERS does not apply),
 * with your agents. Throws ConfigError naming a bad setting at once.
 *
 *     const runtime = createRuntime({ agents: [hello], config: { PORT: 3000 } });
 *     const { url } = await runtime.listen();
 */
export function createRuntime(options: RuntimeOptions = {}): Runtime {
  const settings = Object.entries(options.config ?? {}).flatMap(([name, value]) => (value === undefined ? [] : [[name, String(value)]]));
  const config = loadConfig({ ...(options.env ?? process.env), ...Object.fromEntries(settings) });
  const logger =
    options.logger ??
    createLogger(config.server.logLevel, { format: config.server.logFormat, defaultMeta: { instance_id: config.instanceId } });
  let started: Promise<RunningServer> | undefined;
  let closed: Promise<void> | undefined;
  return {
    config,
    listen() {
      if (closed !== undefined) return Promise.reject(new Error('createRuntime: listen() after close()'));
      started ??= startServer(config, logger, undefined, options.agents ?? []);
      return started.then(({ url, instanceId }) => ({ url, instanceId }));
    },
    close() {
      closed ??=
        started === undefined
          ? Promise.resolve()
          : started.then(
              (server) => server.close(),
              () => undefined,
            );
      return closed;
    },
  };
}
