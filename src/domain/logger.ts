/**
 * What agentd's parts need of a logger: leveled, structured lines, child loggers that carry
 * fields, and a context that every line written while some work runs carries (a run's ids, a
 * request's id). The logger made in `observability/logger.ts` is one.
 *
 * Fields are snake_case (`run_id`, `duration_ms`), like the HTTP API's JSON. An Error anywhere
 * in the fields is written with its message, name, code, stack and causes. An Error whose
 * message quotes what came from outside agentd (a provider's answer) offers a `logMessage`
 * (`LogSafeMessage`), which logs show instead.
 */
export interface Logger {
  error(message: string, meta?: Record<string, unknown>): unknown;
  warn(message: string, meta?: Record<string, unknown>): unknown;
  info(message: string, meta?: Record<string, unknown>): unknown;
  debug(message: string, meta?: Record<string, unknown>): unknown;
  /** A logger that adds `meta` to every line. */
  child(meta: Record<string, unknown>): Logger;
  /**
   * Runs `fn` with `fields` added to every line that this logger, its parent and its children
   * write while `fn` runs, in `fn` and in everything it starts (AsyncLocalStorage). Nested
   * calls add to the outer fields; a line's own fields win over the context's.
   */
  withContext<T>(fields: Record<string, unknown>, fn: () => T): T;
}

/** An Error whose `message` may quote outside text offers, for logs, a message that does not. */
export interface LogSafeMessage {
  readonly logMessage: string;
}
