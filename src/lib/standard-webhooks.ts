import { createHmac } from 'node:crypto';

/** The prefix of a secret in the Standard Webhooks form, `whsec_<base64 of the key>`. */
export const SECRET_PREFIX = 'whsec_';
/** Fewest bytes of key accepted (Standard Webhooks recommends 24 to 64). */
const MIN_KEY_BYTES = 16;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * The signing key of a webhook secret: `whsec_<base64>` is the base64-decoded key, as the
 * Standard Webhooks libraries read it; any other text is its UTF-8 bytes (a receiver uses it
 * as a raw key). Throws when the key is shorter than 16 bytes or the base64 is malformed.
 */
export function parseWebhookSecret(text: string): Buffer {
  const trimmed = text.trim();
  if (trimmed.startsWith(SECRET_PREFIX)) {
    const encoded = trimmed.slice(SECRET_PREFIX.length);
    if (!BASE64.test(encoded)) throw new Error(`must be ${SECRET_PREFIX} followed by standard base64`);
    const key = Buffer.from(encoded, 'base64');
    if (key.length < MIN_KEY_BYTES) throw new Error(`must hold a key of at least ${MIN_KEY_BYTES} bytes after ${SECRET_PREFIX}`);
    return key;
  }
  const key = Buffer.from(trimmed, 'utf8');
  if (key.length < MIN_KEY_BYTES) throw new Error(`must be at least ${MIN_KEY_BYTES} characters long (or ${SECRET_PREFIX}<base64>)`);
  return key;
}

/**
 * The `webhook-signature` header of a message per Standard Webhooks: `v1,` and the base64
 * HMAC-SHA256, under `key`, of `<id>.<timestamp>.<body>` (timestamp in whole seconds).
 */
export function signWebhook(key: Buffer, id: string, timestampS: number, body: string): string {
  return `v1,${createHmac('sha256', key).update(`${id}.${timestampS}.${body}`).digest('base64')}`;
}
