import { types } from 'node:util';

/** An Error as a log line holds it: plain, enumerable data. */
export interface SerializedError {
  readonly name: string;
  readonly message: string;
  readonly code?: string | number;
  readonly stack?: string;
  readonly cause?: unknown;
  /** An AggregateError's errors (the first MAX_AGGREGATED). */
  readonly errors?: readonly unknown[];
  readonly [field: string]: unknown;
}

/** Causes (and nested values) followed this deep; below, a value is cut to `[…]`. */
const MAX_DEPTH = 6;
/** Entries of an array, or errors of an AggregateError, kept per value; the rest are counted. */
const MAX_ENTRIES = 100;

/**
 * Fields of an Error, besides name, message, code and stack, that say what failed without
 * holding data: socket and DNS failures (`syscall`, `address`, `port`, `hostname`), the
 * database's (`severity`, `routine`, `table`, `column`, `constraint`; `DatabaseError`), HTTP
 * and provider errors (`status`, `provider`, `type`). Only these are copied, and only when
 * they are strings, numbers or booleans: fields such as a driver's `query`, `parameters` or
 * `detail`, or body-parser's `body`, hold statement parameters or request input.
 */
const SAFE_FIELDS = [
  'errno',
  'syscall',
  'address',
  'port',
  'hostname',
  'severity',
  'routine',
  'table',
  'column',
  'constraint',
  'status',
  'statusCode',
  'provider',
  'dependency',
  'type',
  'runErrorCode',
] as const;

function isError(value: unknown): value is Error {
  return value instanceof Error || types.isNativeError(value);
}

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/** The stack with its header (the first lines, up to the frames) replaced by `header`. */
function restack(stack: string, header: string): string {
  const frames = stack.search(/\n\s+at /);
  return frames < 0 ? header : `${header}${stack.slice(frames)}`;
}

function errorToObject(error: Error, depth: number, seen: WeakSet<object>): SerializedError {
  const fields = error as unknown as Record<string, unknown>;
  const name = typeof error.name === 'string' && error.name !== '' ? error.name : 'Error';
  const logMessage = fields.logMessage;
  const safe = typeof logMessage === 'string';
  const message = safe ? logMessage : typeof error.message === 'string' ? error.message : String(fields.message);
  const out: Record<string, unknown> = { name, message };
  const code = fields.code;
  if (typeof code === 'string' || typeof code === 'number') out.code = code;
  for (const key of SAFE_FIELDS) {
    const value = fields[key];
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') out[key] = value;
  }
  if (typeof error.stack === 'string') out.stack = safe ? restack(error.stack, `${name}: ${message}`) : error.stack;
  if (error instanceof AggregateError && Array.isArray(error.errors)) {
    out.errors = walkArray(error.errors, depth, seen);
  }
  if ('cause' in error && error.cause !== undefined) out.cause = walk(error.cause, depth + 1, seen);
  return out as SerializedError;
}

/**
 * `value` with every Error in it, at any depth, as a `SerializedError`; plain objects and
 * arrays are copied (cycles become `[Circular]`, past MAX_DEPTH `[…]`); anything else is kept.
 */
function walk(value: unknown, depth: number, seen: WeakSet<object>): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (seen.has(value)) return '[Circular]';
  if (depth > MAX_DEPTH) return '[…]';
  const isErr = isError(value);
  if (!isErr && !Array.isArray(value) && !isPlainObject(value)) return value;
  seen.add(value);
  try {
    if (isErr) return errorToObject(value, depth, seen);
    if (Array.isArray(value)) return walkArray(value, depth, seen);
    const out: Record<string, unknown> = {};
    for (const [key, each] of Object.entries(value)) out[key] = walk(each, depth + 1, seen);
    return out;
  } finally {
    // Only the path from the root counts as a cycle: the same error twice side by side is not one.
    seen.delete(value);
  }
}

/** The first MAX_ENTRIES entries walked, then `…and N more` when there were more. */
function walkArray(values: readonly unknown[], depth: number, seen: WeakSet<object>): unknown[] {
  const out = values.slice(0, MAX_ENTRIES).map((each) => walk(each, depth + 1, seen));
  if (values.length > MAX_ENTRIES) out.push(`…and ${values.length - MAX_ENTRIES} more`);
  return out;
}

/** An Error as plain data: name, message, code, stack, the safe fields and its causes (recursively, bounded). */
export function serializeError(error: Error): SerializedError {
  return walk(error, 0, new WeakSet()) as SerializedError;
}

/** `value` with every Error in it, at any depth, serialized (`serializeError`); plain objects and arrays are copied. */
export function serializeValue(value: unknown): unknown {
  return walk(value, 1, new WeakSet());
}

/**
 * An error and its causes as lines for a person: `message (code)`, then `caused by: …` for
 * each cause. No stacks. Non-Error causes are shown as text.
 */
export function errorChain(error: unknown): string {
  const lines: string[] = [];
  const seen = new Set<unknown>();
  let current: unknown = error;
  for (let depth = 0; current !== undefined && depth <= MAX_DEPTH; depth += 1) {
    if (seen.has(current)) break;
    seen.add(current);
    lines.push(`${depth === 0 ? '' : '  caused by: '}${describe(current)}`);
    current = isError(current) ? current.cause : undefined;
  }
  return lines.join('\n');
}

function describe(value: unknown): string {
  if (typeof value === 'string') return value;
  if (!isError(value)) {
    try {
      return JSON.stringify(walk(value, 1, new WeakSet())) ?? String(value);
    } catch {
      return String(value); // a cycle in an object that is not plain
    }
  }
  const { name, message, code, errors } = errorToObject(value, 0, new WeakSet());
  const text = message === '' ? name : name === 'Error' ? message : `${name}: ${message}`;
  const inner = (errors ?? []).map((each) =>
    typeof each === 'object' && each !== null ? (each as SerializedError).message : String(each),
  );
  return `${text}${code === undefined ? '' : ` (${code})`}${inner.length === 0 ? '' : ` [${inner.join('; ')}]`}`;
}
