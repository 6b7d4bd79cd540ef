import winston from 'winston';

/** Structured JSON logs to stdout. Never log API keys, Authorization headers or query strings. */
export function createLogger(level: string, defaultMeta: Record<string, unknown> = {}): winston.Logger {
  return winston.createLogger({
    level,
    defaultMeta,
    format: winston.format.combine(winston.format.timestamp(), winston.format.errors({ stack: true }), winston.format.json()),
    transports: [new winston.transports.Console()],
  });
}
