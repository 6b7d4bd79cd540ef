import { isIP } from 'node:net';

/** A range of addresses: its first address's bytes and the length of its prefix in bits. */
type Range = readonly [bytes: readonly number[], prefixBits: number];

const v4 = (text: string, prefixBits: number): Range => [text.split('.').map(Number), prefixBits];
const v6 = (text: string, prefixBits: number): Range => [ipv6Bytes(text) as number[], prefixBits];

/**
 * IPv4 ranges that are not globally reachable (IANA special-purpose registry, RFC 6890 and
 * successors): "this network" and the unspecified address, private (RFC 1918), shared
 * (CGNAT), loopback, link-local, IETF protocol assignments, documentation, the 6to4 relay,
 * benchmarking, multicast, reserved and broadcast.
 */
const V4_NON_GLOBAL: readonly Range[] = [
  v4('0.0.0.0', 8),
  v4('10.0.0.0', 8),
  v4('100.64.0.0', 10),
  v4('127.0.0.0', 8),
  v4('169.254.0.0', 16),
  v4('172.16.0.0', 12),
  v4('192.0.0.0', 24),
  v4('192.0.2.0', 24),
  v4('192.88.99.0', 24),
  v4('192.168.0.0', 16),
  v4('198.18.0.0', 15),
  v4('198.51.100.0', 24),
  v4('203.0.113.0', 24),
  v4('224.0.0.0', 4),
  v4('240.0.0.0', 4),
];

/** Global unicast IPv6 (2000::/3); everything outside it (loopback, fc00::/7, fe80::/10, multicast…) is not global. */
const V6_GLOBAL_UNICAST = v6('2000::', 3);

/** Inside 2000::/3 but not global: IETF protocol assignments (Teredo among them) and documentation. */
const V6_NON_GLOBAL_IN_UNICAST: readonly Range[] = [v6('2001::', 23), v6('2001:db8::', 32), v6('3fff::', 20)];

/** IPv6 ranges that carry an IPv4 address, and the byte it starts at: mapped, NAT64 (well-known prefix) and 6to4. */
const V6_EMBEDDING_V4: ReadonlyArray<readonly [Range, number]> = [
  [v6('::ffff:0:0', 96), 12],
  [v6('64:ff9b::', 96), 12],
  [v6('2002::', 16), 2],
];

function inRange(bytes: readonly number[], [first, prefixBits]: Range): boolean {
  if (bytes.length !== first.length) return false;
  for (let bit = 0; bit < prefixBits; bit += 8) {
    const i = bit / 8;
    const mask = prefixBits - bit >= 8 ? 0xff : (0xff << (8 - (prefixBits - bit))) & 0xff;
    if (((bytes[i] as number) & mask) !== ((first[i] as number) & mask)) return false;
  }
  return true;
}

/** The 16 bytes of an IPv6 address (a zone `%eth0` ignored, a dotted IPv4 tail allowed); null when it is not one. */
export function ipv6Bytes(text: string): number[] | null {
  const address = text.replace(/%.*$/, '');
  if (isIP(address) !== 6) return null;
  let groups = address;
  const tail = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(address);
  if (tail !== null) {
    const [a, b, c, d] = tail.slice(1).map(Number) as [number, number, number, number];
    groups = `${address.slice(0, tail.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', rest] = groups.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = rest === undefined || rest === '' ? [] : rest.split(':');
  const words = [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right].map((w) => parseInt(w, 16));
  return words.flatMap((word) => [word >> 8, word & 0xff]);
}

function isGlobalV4(bytes: readonly number[]): boolean {
  return !V4_NON_GLOBAL.some((range) => inRange(bytes, range));
}

/**
 * Whether `text` is an IP address (v4, or v6 without brackets) that is globally reachable:
 * false for loopback, private (RFC 1918, fc00::/7), link-local (169.254/16, fe80::/10),
 * unspecified, shared, documentation, multicast and other special-purpose ranges, also when
 * such an IPv4 address hides in an IPv6 one (mapped, NAT64, 6to4); false for anything that is
 * not an IP address.
 */
export function isGlobalAddress(text: string): boolean {
  if (isIP(text) === 4) return isGlobalV4(text.split('.').map(Number));
  const bytes = ipv6Bytes(text);
  if (bytes === null) return false;
  for (const [range, at] of V6_EMBEDDING_V4) if (inRange(bytes, range)) return isGlobalV4(bytes.slice(at, at + 4));
  return inRange(bytes, V6_GLOBAL_UNICAST) && !V6_NON_GLOBAL_IN_UNICAST.some((range) => inRange(bytes, range));
}
