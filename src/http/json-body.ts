import express, { type RequestHandler } from 'express';
import { InvalidJsonError, InvalidRequestError } from '../domain/index.js';
import { inspectJsonText } from '../lib/inspect-json-text.js';

/**
 * The deepest nesting of arrays and objects a request body may have (the body's own object
 * counts as one). Checked on the raw bytes before JSON.parse, so a deep body costs no recursion
 * anywhere, and no later step (validation, JSON.stringify, jsonb) meets one.
 */
export const MAX_JSON_DEPTH = 64;

/** A request body with U+0000 in it: Postgres cannot store it in text or jsonb. */
export class NulCharacterError extends InvalidRequestError {
  constructor() {
    super('Strings in the body may not contain the NUL character (\\u0000).', 'body');
  }
}

/** Refuses, before parsing, JSON that JSON.parse would accept but agentd cannot keep. */
function checkJsonText(_req: unknown, _res: unknown, body: Buffer, charset: string | null): void {
  if (charset !== null && charset !== 'utf-8' && charset !== 'utf8') throw new InvalidRequestError('The request body must be UTF-8 JSON.');
  switch (inspectJsonText(body, MAX_JSON_DEPTH)) {
    case null:
      return;
    case 'nul_character':
      throw new NulCharacterError();
    case 'not_utf8':
      throw new InvalidJsonError('The request body is not valid UTF-8.');
    case 'too_deep':
      throw new InvalidJsonError(`The request body nests arrays and objects deeper than ${MAX_JSON_DEPTH} levels.`);
    case 'lone_surrogate':
      throw new InvalidJsonError(
        'The request body has a lone UTF-16 surrogate (\\ud800-\\udfff without its pair), which no text can hold.',
      );
  }
}

/**
 * The JSON body parser, mounted after authentication. Bodies must be uncompressed
 * (`Content-Encoding: identity` or none; anything else is 415) and at most `maxBodyBytes`.
 */
export function jsonBody(maxBodyBytes: number): RequestHandler {
  return express.json({ limit: maxBodyBytes, type: () => true, inflate: false, verify: checkJsonText });
}
