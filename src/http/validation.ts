import type { z } from 'zod';
import { InvalidRequestError, NotFoundError } from '../domain/index.js';
import { dottedPath, firstIssue } from '../lib/zod-issue.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Parses with a zod schema; throws InvalidRequestError naming the first bad field. */
export function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const { path, message } = firstIssue(result.error);
  const field = dottedPath(path) || what;
  throw new InvalidRequestError(`${field}: ${message}`, field);
}

/** A path id; a malformed one is simply not found, as the contract says. */
export function uuidParam(value: unknown): string {
  if (typeof value !== 'string' || !UUID.test(value)) throw new NotFoundError();
  return value.toLowerCase();
}
