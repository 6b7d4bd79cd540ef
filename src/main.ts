import cluster from 'node:cluster';
import { runPrimary } from './app/cluster-primary.js';
import { detectMachine } from './concurrency/detect.js';
import { type Config, loadConfig } from './config/config.js';
import { ConfigError, type Logger } from './domain/index.js';
import { createLogger } from './observability/logger.js';
import { errorChain } from './observability/serialize-error.js';
import { startServer } from './app/server.js';

function loadConfigOrExit(): Config {
  try {
    return loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`agentd: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
}

/**
 * Why start-up stopped: the error and its causes on stderr for the person at the terminal, and
 * as a log line. Exit 2 for a configuration that cannot work with the servers found (e.g. Redis
 * maxclients too low for DB_INSTANCES × WORKERS), so a cluster primary stops instead of restarting; else 1.
 */
function failedToStart(error: unknown, logger: Logger | undefined): never {
  logger?.error('failed to start', { error });
  process.stderr.write(`agentd: failed to start: ${errorChain(error)}\n`);
  process.exit(error instanceof ConfigError ? 2 : 1);
}

/**
 * Entry point: config, then either the cluster primary (WORKERS > 1, in the process that was
 * started) or a server: a lone process or one worker. SIGTERM/SIGINT drain and stop; a second
 * one exits at once (in a cluster, the primary decides that).
 */
async function main(): Promise<void> {
  const config = loadConfigOrExit();
  const { logLevel, logFormat } = config.server;
  const logger = createLogger(logLevel, {
    format: logFormat,
    colors: process.stdout.isTTY,
    defaultMeta: { instance_id: config.instanceId },
  });
  process.on('unhandledRejection', (error) => logger.error('unhandled rejection', { error }));
  // Values are never shown: a misspelt name may still hold a secret.
  for (const { name, intended } of config.nearMisses) {
    if (cluster.isPrimary) logger.warn(`unknown variable ${name}; did you mean ${intended}?`, { variable: name, intended });
  }
  if (cluster.isPrimary && config.server.workers !== 1) {
    const workers = config.server.workers === 'auto' ? (await detectMachine()).effective.cpus : config.server.workers;
    if (workers > 1)
      process.exit(
        await runPrimary({
          workers,
          shutdownGraceMs: config.server.shutdownGraceMs,
          port: config.server.port,
          host: config.server.host,
          logger,
        }),
      );
    logger.info('WORKERS=auto found one CPU; serving in this process');
  }
  // Handlers go in before start-up, so a signal that arrives while starting stops the server once it is up.
  const server = startServer(config, logger);
  let signals = 0;
  const stop = (signal: NodeJS.Signals) => {
    signals += 1;
    // A worker gets the same signal twice (from the primary, and from a terminal or systemd signalling the group).
    if (signals > 1 && !cluster.isWorker) process.exit(130);
    if (signals > 1) return;
    logger.info('signal received', { signal });
    server
      .then((running) => running.close())
      .then(
        () => process.exit(0),
        (error: unknown) => {
          logger.error('shutdown failed', { error });
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  await server.catch((error: unknown) => failedToStart(error, logger));
}

main().catch((error: unknown) => failedToStart(error, undefined));
