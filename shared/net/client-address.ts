// Client addresses as the throttles see them: which proxies may name the client (TRUST_PROXY), which
// clients skip the request limits (RATE_LIMIT_ALLOWLIST), and a fixed-length Redis key part per client,
// whatever a header held.
import { createHash } from 'node:crypto';
import { BlockList, isIP } from 'node:net';

export interface Subnet {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** `10.0.0.0/8`, `2001:db8::/32` or a bare address (a /32 or /128); throws RangeError on anything else. */
export function parseSubnet(text: string): Subnet {
  const [address = '', bits, extra] = text.trim().split('/');
  const version = isIP(address);
  if (version === 0 || extra !== undefined) throw new RangeError(`not an address or CIDR: ${text}`);
  const max = version === 4 ? 32 : 128;
  const prefix = bits === undefined ? max : Number(bits);
  if (!/^\d{1,3}$/.test(bits ?? String(max)) || prefix > max) throw new RangeError(`bad prefix length in ${text}`);
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

export function parseSubnetList(value: string): Subnet[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(parseSubnet);
}

/** A matcher for a subnet list; IPv4-mapped IPv6 addresses (::ffff:1.2.3.4) match their IPv4 subnets. */
export function subnetMatcher(subnets: Subnet[]): (ip: string) => boolean {
  if (subnets.length === 0) return () => false;
  const list = new BlockList();
  for (const s of subnets) list.addSubnet(s.address, s.prefix, s.family);
  return (ip) => {
    const plain = unmapIPv4(ip);
    const version = isIP(plain);
    return version !== 0 && list.check(plain, version === 4 ? 'ipv4' : 'ipv6');
  };
}

/**
 * Fastify's trustProxy from TRUST_PROXY: empty trusts no proxy (X-Forwarded-For is ignored), a number
 * trusts that many hops in front of the server, a list trusts proxies at those addresses.
 */
export function trustProxyOption(value: string): false | string[] | ((address: string, hop: number) => boolean) {
  const text = value.trim();
  if (text === '' || text === '0') return false;
  if (/^\d+$/.test(text)) {
    const hops = Number(text);
    return (_address, hop) => hop < hops;
  }
  return parseSubnetList(text).map((s) => `${s.address}/${s.prefix}`);
}

function unmapIPv4(ip: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip);
  return mapped ? mapped[1]! : ip;
}

/** The first 64 bits of an IPv6 address: one subscriber usually holds a whole /64. */
function ipv6Prefix64(ip: string): string {
  const [head = '', tail = ''] = ip.toLowerCase().split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = ip.includes('::') ? [...left, ...Array(8 - left.length - right.length).fill('0'), ...right] : left;
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}

/** The client a limit counts: an IPv4 address, an IPv6 /64, or "invalid" for anything that is not an IP. */
export function normaliseClient(ip: string | undefined): string {
  const plain = unmapIPv4(ip ?? '');
  const version = isIP(plain);
  if (version === 4) return plain;
  if (version === 6 && !plain.includes('.')) return ipv6Prefix64(plain);
  if (version === 6) return plain.toLowerCase();
  return 'invalid';
}

/** 32 hex characters naming the client in Redis keys: the same length whatever the request carried. */
export function clientKey(ip: string | undefined): string {
  return createHash('sha256').update(normaliseClient(ip)).digest('hex').slice(0, 32);
}

/** A rate like `10/1h`, `5/15m` or `30/m`: at most `max` in `windowMs`. */
export interface Rate {
  max: number;
  windowMs: number;
}

export const RATE_PATTERN = '^[0-9]{1,7}/[0-9]{0,5}[smhd]$';
const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseRate(text: string): Rate {
  const match = /^(\d{1,7})\/(\d{0,5})([smhd])$/.exec(text.trim());
  if (!match) throw new RangeError(`not a rate like 10/1h: ${text}`);
  const count = match[2] ? Number(match[2]) : 1;
  if (count < 1) throw new RangeError(`a rate's window must be at least 1: ${text}`);
  return { max: Number(match[1]), windowMs: count * UNIT_MS[match[3]!]! };
}

/** "45 seconds", "1 minute", "14 minutes", "2 hours": how long a client must wait, rounded up. */
export function waitText(seconds: number): string {
  const s = Math.max(1, Math.ceil(seconds));
  const plural = (n: number, unit: string) => `${n} ${unit}${n === 1 ? '' : 's'}`;
  if (s < 60) return plural(s, 'second');
  if (s < 2 * 3600) return plural(Math.ceil(s / 60), 'minute');
  return plural(Math.ceil(s / 3600), 'hour');
}
