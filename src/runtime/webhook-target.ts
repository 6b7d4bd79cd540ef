import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { InvalidRequestError } from '../domain/index.js';
import { isGlobalAddress } from '../lib/ip-address.js';

/** Longest webhook URL accepted, in characters. */
export const WEBHOOK_URL_MAX_LENGTH = 2048;

/** What a refused target is, after "targets" (admission) or "resolves to" (delivery). */
const NON_PUBLIC =
  'a loopback, private, link-local or otherwise non-public address, which this server does not call (WEBHOOK_ALLOW_PRIVATE)';

/** What admission checks a webhook against: whether webhooks are on (WEBHOOK_SECRET set) and WEBHOOK_ALLOW_PRIVATE. */
export interface WebhookPolicy {
  readonly enabled: boolean;
  readonly allowPrivate: boolean;
}

/** The host of a URL as DNS or an IP parser takes it: no IPv6 brackets, no trailing dot. */
export function bareHost(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '');
}

/** Names that resolve to loopback whatever DNS says (RFC 6761). */
function isLoopbackName(host: string): boolean {
  const name = host.toLowerCase();
  return name === 'localhost' || name.endsWith('.localhost');
}

/**
 * The webhook URL a run may carry, normalised (what is stored, shown and called), or
 * InvalidRequestError naming `webhook`: webhooks off, not an http(s) URL, credentials in it, or
 * (without allowPrivate) an IP literal or `localhost` name that is not public. A name that
 * resolves to such an address is refused at delivery, after resolution.
 */
export function checkWebhookUrl(text: string, policy: WebhookPolicy): string {
  const refuse = (why: string) => new InvalidRequestError(`webhook: ${why}.`, 'webhook');
  if (!policy.enabled) throw refuse('webhooks are off on this server (WEBHOOK_SECRET is not set)');
  if (text.length > WEBHOOK_URL_MAX_LENGTH) throw refuse(`must be at most ${WEBHOOK_URL_MAX_LENGTH} characters`);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw refuse('must be an absolute http:// or https:// URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw refuse('must be an http:// or https:// URL');
  if (url.username !== '' || url.password !== '') throw refuse('must not carry credentials; receivers verify the signature instead');
  const host = bareHost(url);
  if (!policy.allowPrivate && (isLoopbackName(host) || (isIP(host) !== 0 && !isGlobalAddress(host)))) throw refuse(`targets ${NON_PUBLIC}`);
  url.hash = '';
  return url.href;
}

/** Where one attempt connects: an address resolved once and used for the whole request (no second lookup to rebind). */
export type ResolvedTarget =
  { readonly kind: 'address'; readonly address: string; readonly family: 4 | 6 } | { readonly kind: 'refused'; readonly reason: string };

/**
 * Resolves the URL's host (an IP literal as itself) and picks the address to connect to.
 * Without `allowPrivate`, a host with any address that is not public is refused (so a name
 * cannot point one of its addresses inside). DNS errors reject.
 */
export async function resolveTarget(url: URL, allowPrivate: boolean): Promise<ResolvedTarget> {
  const host = bareHost(url);
  const literal = isIP(host);
  const addresses =
    literal !== 0
      ? [{ address: host, family: literal }]
      : isLoopbackName(host) && !allowPrivate
        ? []
        : // IPv4 first: one address is used, and a host without IPv6 routes is common.
          (await lookup(host, { all: true, verbatim: true })).sort((x, y) => x.family - y.family);
  if (!allowPrivate && (addresses.length === 0 || addresses.some((a) => !isGlobalAddress(a.address)))) {
    // Which address is not said: the record would tell an account what agentd's DNS knows of names inside.
    return { kind: 'refused', reason: `${host} resolves to ${NON_PUBLIC}` };
  }
  const first = addresses[0];
  if (first === undefined) return { kind: 'refused', reason: `${host} resolves to no address` };
  return { kind: 'address', address: first.address, family: first.family === 6 ? 6 : 4 };
}
