/**
 * What agentd's parts need of a logger: leveled, structured lines and child loggers that
 * carry context. The winston logger made in `observability/logger.ts` is one.
 */
export interface Logger {
  error(message: string, meta?: Record<string, unknown>): unknown;
  warn(message: string, meta?: Record<string, unknown>): unknown;
  info(message: string, meta?: Record<string, unknown>): unknown;
  debug(message: string, meta?: Record<string, unknown>): unknown;
  /** A logger that adds `meta` to every line. */
  child(meta: Record<string, unknown>): Logger;
}
