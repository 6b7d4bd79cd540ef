/**
 * What the Database adapters throw for a failed statement instead of the driver's error.
 *
 * The drivers' errors carry the statement's text and parameters (PGlite as enumerable
 * `query` and `params`, the `postgres` package as hidden `query`, `parameters` and `args`),
 * and the server's own fields quote the data: `detail` ("Failing row contains (…)"), `where`
 * ("JSON data, line 1: …"), and the message itself (`invalid input syntax for type integer:
 * "…"`). Any of them would put request input in a log line. This error keeps what names the
 * failure but holds no data: the SQLSTATE `code`, the severity, the server routine, the names
 * of the schema objects involved, and the message with everything from its first quote to
 * its last replaced by `"…"`. It has no `cause`.
 */
export class DatabaseError extends Error {
  /** The SQLSTATE (`23505`), or the driver's or the system's code (`ECONNREFUSED`). */
  readonly code: string | undefined;
  readonly severity: string | undefined;
  readonly routine: string | undefined;
  readonly table: string | undefined;
  readonly column: string | undefined;
  readonly constraint: string | undefined;

  constructor(message: string, fields: Partial<Pick<DatabaseError, 'code' | 'severity' | 'routine' | 'table' | 'column' | 'constraint'>>) {
    super(message);
    this.name = 'DatabaseError';
    this.code = fields.code;
    this.severity = fields.severity;
    this.routine = fields.routine;
    this.table = fields.table;
    this.column = fields.column;
    this.constraint = fields.constraint;
  }
}

const MAX_MESSAGE_CHARS = 300;

/**
 * A server message without the values it quotes. Postgres puts values (and identifiers) in
 * double quotes, and a value may itself hold quotes, so everything from the first quote to
 * the last goes.
 */
export function redactQuoted(message: string): string {
  const first = message.search(/["']/);
  if (first < 0) return message.slice(0, MAX_MESSAGE_CHARS);
  const last = Math.max(message.lastIndexOf('"'), message.lastIndexOf("'"));
  const redacted = `${message.slice(0, first)}"…"${last > first ? message.slice(last + 1) : ''}`;
  return redacted.slice(0, MAX_MESSAGE_CHARS);
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** The driver's error as a DatabaseError (see above); a DatabaseError is returned as it is. */
export function toDatabaseError(error: unknown): DatabaseError {
  if (error instanceof DatabaseError) return error;
  const fields = (typeof error === 'object' && error !== null ? error : {}) as Record<string, unknown>;
  const message = error instanceof Error ? error.message : 'the database failed';
  return new DatabaseError(redactQuoted(message), {
    code: text(fields.code),
    severity: text(fields.severity),
    routine: text(fields.routine),
    table: text(fields.table ?? fields.table_name),
    column: text(fields.column ?? fields.column_name),
    constraint: text(fields.constraint ?? fields.constraint_name),
  });
}
