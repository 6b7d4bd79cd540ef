import { z } from 'zod';

/** One environment variable: its name and the zod schema that parses its text. */
export interface Variable<N extends string = string, S extends z.ZodType = z.ZodType> {
  readonly env: N;
  readonly schema: S;
  /** Shown in the limits table of `/v1/admin/capacity` and the start-up `sizing` line. */
  readonly limit: boolean;
  /** Its value is never shown, not even in the message about a bad one (tokens, text that may hold keys). */
  readonly secret: boolean;
  /** Conventional other names read when `env` is unset (WEB_CONCURRENCY for WORKERS); `env` wins when both are set. */
  readonly aliases: readonly string[];
}

/**
 * Declares a variable; `limit` puts it in the instance's limits table; `secret` keeps its value
 * out of every message; `aliases` are other names read when `env` is unset.
 */
export function variable<N extends string, S extends z.ZodType>(
  env: N,
  schema: S,
  options: { limit?: boolean; secret?: boolean; aliases?: readonly string[] } = {},
): Variable<N, S> {
  return { env, schema, limit: options.limit ?? false, secret: options.secret ?? false, aliases: options.aliases ?? [] };
}

/** Whether an environment value counts as set (empty and blank strings do not). */
export const isSet = (raw: string | undefined): raw is string => raw !== undefined && raw.trim() !== '';

/** The name `variable` is read from in `env`: its own when set, else the first alias set, else its own. */
export function nameRead(variable: Variable, env: NodeJS.ProcessEnv): string {
  if (isSet(env[variable.env])) return variable.env;
  return variable.aliases.find((alias) => isSet(env[alias])) ?? variable.env;
}

/** A whole number in [min, max], written in decimal digits. */
export const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, `must be a whole number between ${min} and ${max}`)
    .transform(Number)
    .pipe(z.number().int().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`));

/** A URL with one of the protocols (e.g. `postgres:`). */
export const url = (protocols: readonly string[]) =>
  z
    .string()
    .trim()
    .refine(
      (value) => {
        try {
          return protocols.includes(new URL(value).protocol);
        } catch {
          return false; // reported by the refinement's message below
        }
      },
      `must be a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}`,
    );

export const secret = z.string().min(16, 'must be at least 16 characters long');

export const bool = z.enum(['true', 'false'], { message: 'must be true or false' }).transform((value) => value === 'true');

/**
 * A parser of structured text (a list, JSON) as a zod schema: what `parse` throws becomes the
 * variable's problem, with the thrown message.
 */
export const parsedText = <T>(parse: (text: string) => T) =>
  z.string().transform((text, ctx): T => {
    try {
      return parse(text);
    } catch (error) {
      ctx.issues.push({ code: 'custom', message: (error as Error).message, input: text });
      return z.NEVER;
    }
  });
