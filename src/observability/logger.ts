import { AsyncLocalStorage } from 'node:async_hooks';
import winston from 'winston';
import type { Logger } from '../domain/index.js';
import { jsonLines, prettyLines, withContextFields } from './log-format.js';

export type LogFormat = 'json' | 'pretty';

export interface LoggerOptions {
  /** `json` (default): one JSON object per line; `pretty`: a line for people, errors' stacks below it. */
  readonly format?: LogFormat;
  /** Colour the level in `pretty` lines (for a TTY only). Default false. */
  readonly colors?: boolean;
  /** Fields on every line (`instance_id`). */
  readonly defaultMeta?: Record<string, unknown>;
  /** Where lines go; default stdout. */
  readonly stream?: NodeJS.WritableStream;
}

type Fields = Record<string, unknown>;

/** The domain Logger over a winston logger and the context its family shares. */
class WinstonLogger implements Logger {
  constructor(
    private readonly winston: winston.Logger,
    private readonly context: AsyncLocalStorage<Fields>,
  ) {}

  error(message: string, meta?: Fields): void {
    this.winston.error(message, meta);
  }

  warn(message: string, meta?: Fields): void {
    this.winston.warn(message, meta);
  }

  info(message: string, meta?: Fields): void {
    this.winston.info(message, meta);
  }

  debug(message: string, meta?: Fields): void {
    this.winston.debug(message, meta);
  }

  child(meta: Fields): Logger {
    return new WinstonLogger(this.winston.child(meta), this.context);
  }

  withContext<T>(fields: Fields, fn: () => T): T {
    const outer = this.context.getStore();
    return this.context.run(outer === undefined ? { ...fields } : { ...outer, ...fields }, fn);
  }
}

/**
 * Structured logs at `level` and above, to stdout: JSON lines (or `pretty` ones) whose fields
 * are the line's own, its loggers' (`child`), the context's (`withContext`), and
 * `defaultMeta`. Every Error among them, at any depth, is written with its message, name,
 * code, stack and causes. Never log API keys, tokens, Authorization headers, request input,
 * query strings or SQL parameters.
 */
export function createLogger(level: string, options: LoggerOptions = {}): Logger {
  const context = new AsyncLocalStorage<Fields>();
  const lines = options.format === 'pretty' ? prettyLines(options.colors ?? false) : jsonLines();
  const logger = winston.createLogger({
    level,
    defaultMeta: options.defaultMeta,
    format: winston.format.combine(
      withContextFields(() => context.getStore()),
      lines,
    ),
    transports: [new winston.transports.Stream({ stream: options.stream ?? process.stdout })],
  });
  return new WinstonLogger(logger, context);
}
