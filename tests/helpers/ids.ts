import { randomBytes } from 'node:crypto';

/** `bytes` random bytes as hex (default 4): a tag no other test, or run of this one, uses. */
export function randomTag(bytes = 4): string {
  return randomBytes(bytes).toString('hex');
}

/** `<label>-<random tag>`: a name (account, instance, key) of this test's own. */
export function unique(label: string): string {
  return `${label}-${randomTag()}`;
}
