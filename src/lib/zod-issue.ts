import type { z } from 'zod';

/** The first issue of a failed parse. */
export interface FirstIssue {
  /** Where it is: keys and indexes from the parsed value's root ([] for the root itself). */
  readonly path: readonly PropertyKey[];
  /** What is wrong: zod's message, or "is invalid" when the error holds no issue. */
  readonly message: string;
}

/** The first issue of `error`: its path and message. */
export function firstIssue(error: z.ZodError): FirstIssue {
  const issue = error.issues[0];
  return { path: issue?.path ?? [], message: issue?.message ?? 'is invalid' };
}

/** A path as an API error names its field: `input.messages.0.role`. */
export function dottedPath(path: readonly PropertyKey[]): string {
  return path.map(String).join('.');
}

/**
 * The first issue of `error` as one phrase: its path as JavaScript writes it, then its
 * message (`[0].base_url must be a string`, `match.agent is required`); at the root, the
 * message alone.
 */
export function issuePhrase(error: z.ZodError): string {
  const { path, message } = firstIssue(error);
  const where = path.map((key) => (typeof key === 'number' ? `[${key}]` : `.${String(key)}`)).join('');
  return where === '' ? message : `${where.replace(/^\./, '')} ${message}`;
}
