import { types } from 'node:util';
import winston from 'winston';
import { errorChain, serializeError, serializeValue } from './serialize-error.js';

/** How winston's transports find the finished line (triple-beam's MESSAGE). */
const MESSAGE = Symbol.for('message');

type Info = winston.Logform.TransformableInfo;
type Fields = Record<string, unknown>;

/** The fields a line starts with, in this order, when it has them; the rest follow in the order given. */
const LEADING = ['timestamp', 'level', 'message', 'instance_id', 'request_id', 'run_id', 'account_id'] as const;

/** Adds the current context's fields to the line; the line's own fields win. */
export function withContextFields(current: () => Fields | undefined): winston.Logform.Format {
  return winston.format((info) => {
    const context = current();
    if (context !== undefined) for (const [key, value] of Object.entries(context)) if (!(key in info)) info[key] = value;
    return info;
  })();
}

/** A copy of `info` with the leading fields first (a timestamp added); winston's symbols kept. */
function ordered(info: Info): Info {
  const out: Record<string | symbol, unknown> = { timestamp: new Date().toISOString() };
  for (const key of LEADING) if (key in info && !(key in out)) out[key] = info[key];
  for (const [key, value] of Object.entries(info)) if (!(key in out)) out[key] = value;
  for (const symbol of Object.getOwnPropertySymbols(info)) out[symbol] = info[symbol];
  return out as Info;
}

/** Serializes every Error among the line's fields, at any depth (`serializeValue`), and orders the fields. */
export const errorsAndOrder = winston.format((info) => {
  for (const key of Object.keys(info)) {
    const value = info[key];
    if (typeof value === 'object' && value !== null) info[key] = serializeValue(value);
  }
  return ordered(info);
});

/** BigInts as text (JSON has none). */
function replacer(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}

/** logform's JSON, which survives cycles: for the rare line JSON.stringify refuses. */
const safeJson = winston.format.json({ deterministic: false, replacer });

/** One JSON object per line, fields in the order `errorsAndOrder` left them. */
export function jsonLines(): winston.Logform.Format {
  return winston.format.combine(
    errorsAndOrder(),
    winston.format((info) => {
      try {
        info[MESSAGE] = JSON.stringify(info, replacer);
        return info;
      } catch {
        // A cycle (or a throwing toJSON) in some object that is not plain: logform's JSON copes.
        return safeJson.transform(info, safeJson.options);
      }
    })(),
  );
}

const COLORS: Readonly<Record<string, string>> = { error: '\x1b[31m', warn: '\x1b[33m', info: '\x1b[32m', debug: '\x1b[90m' };
const DIM = '\x1b[2m';
const RESET = '\x1b[0m';

function isError(value: unknown): value is Error {
  return value instanceof Error || types.isNativeError(value);
}

/** A field's value as `key=value` shows it: bare when it is one word, else JSON. */
function shown(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  if (typeof value === 'bigint') return value.toString();
  if (typeof value !== 'object' || value === null) return String(value);
  try {
    return JSON.stringify(serializeValue(value), replacer) ?? String(value);
  } catch {
    return '[unserializable]'; // a cycle in an object that is not plain: a log call must not throw
  }
}

/** An error below its line: its message, its stack's frames, then its causes, indented. */
function errorBlock(key: string, error: Error): string {
  const stack = serializeError(error).stack ?? '';
  const start = stack.search(/\n\s+at /);
  const frames = start < 0 ? '' : stack.slice(start).replace(/\n\s+/g, '\n        ');
  const [message, ...causes] = errorChain(error).split('\n');
  return `\n    ${key}: ${message}${frames}${causes.map((cause) => `\n  ${cause}`).join('')}`;
}

/**
 * For people at a terminal: `12:00:00.000 INFO  message key=value …`, each error's chain and
 * stack on the lines below; `colors` colours the level (only for a TTY).
 */
export function prettyLines(colors: boolean): winston.Logform.Format {
  return winston.format((info) => {
    const { level, message } = info;
    const time = new Date().toISOString().slice(11, 23);
    const levelText = level.toUpperCase().padEnd(5);
    let fields = '';
    let errors = '';
    for (const [key, value] of Object.entries(info)) {
      if (key === 'level' || key === 'message' || value === undefined) continue;
      if (isError(value)) {
        errors += errorBlock(key, value);
        continue;
      }
      fields += colors ? ` ${DIM}${key}=${RESET}${shown(value)}` : ` ${key}=${shown(value)}`;
    }
    const head = colors ? `${DIM}${time}${RESET} ${COLORS[level] ?? ''}${levelText}${RESET}` : `${time} ${levelText}`;
    info[MESSAGE] = `${head} ${String(message)}${fields}${errors}`;
    return info;
  })();
}
