import { loadConfig } from './config/config.js';
import { ConfigError } from './errors.js';
import { createLogger } from './logger.js';
import { startServer } from './server.js';

/** Entry point: config, server, and signals. SIGTERM/SIGINT drain and stop; a second one exits at once. */
async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`agentd: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const logger = createLogger(config.logLevel, { instanceId: config.instanceId });
  process.on('unhandledRejection', (error) => logger.error('unhandled rejection', { error }));
  const server = await startServer(config, logger);
  let signals = 0;
  const stop = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) process.exit(130);
    logger.info('signal received', { signal });
    server.close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error('shutdown failed', { error });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`agentd: failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
