// Which relays a user may make Keyfarm connect to. A user's relay is a URL a stranger chose, opened from
// inside the operator's network, so it must be wss:// without userinfo on a host that is and resolves to
// public unicast addresses only (no loopback, private, link-local, unique-local, CGNAT, multicast,
// reserved or cloud-metadata address). The operator's own BUNKER_RELAYS are trusted and never pass here.
//
// The check runs twice: at creation (the api, to refuse with a 4xx) and at every connect (relay-ingest's
// `lookup`, so a name that resolves elsewhere by then is never connected to: DNS rebinding).
import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';
import { normalizeRelayUrl } from './nostr/relay-url.js';

export interface UserRelayPolicy {
  /** ws:// as well as wss:// (development and tests). */
  allowWs: boolean;
  /** Loopback, private and other non-public hosts too (tests that run a relay on 127.0.0.1 only). */
  allowPrivate: boolean;
  /** Lower-case host names (or IP literals) users may name; empty: any public host. */
  allowlist: readonly string[];
}

export class RelayRefusedError extends Error {
  override name = 'RelayRefusedError';
}

/** Names that are local by definition or lead to a cloud metadata service, whatever DNS says. */
const LOCAL_SUFFIXES = [
  'localhost',
  'local',
  'localdomain',
  'internal',
  'intranet',
  'lan',
  'home.arpa',
  'metadata.goog',
];
const LOCAL_NAMES = new Set(['metadata', 'instance-data']);

/** True for a public unicast address; false for every special range and for anything not an address. */
export function isPublicAddress(ip: string): boolean {
  if (isIP(ip) === 0) return false;
  let addr: ipaddr.IPv4 | ipaddr.IPv6 = ipaddr.parse(ip);
  if (addr instanceof ipaddr.IPv6 && addr.isIPv4MappedAddress()) addr = addr.toIPv4Address();
  return addr.range() === 'unicast';
}

/** A host name that resolves (or is meant to resolve) inside a private network. */
export function isLocalName(host: string): boolean {
  if (!host.includes('.')) return true; // single labels are completed by the resolver's search domains
  if (LOCAL_NAMES.has(host)) return true;
  return LOCAL_SUFFIXES.some((s) => host === s || host.endsWith(`.${s}`));
}

/** The host of a URL as compared and resolved: lower-case, no brackets, no trailing dot. */
export function hostOf(url: URL): string {
  return url.hostname
    .toLowerCase()
    .replace(/^\[(.*)\]$/, '$1')
    .replace(/\.$/, '');
}

/**
 * Checks what can be checked without DNS and returns the relay's normalised URL and host; throws
 * RelayRefusedError with a reason fit for the user otherwise. WHATWG URL parsing has already turned
 * decimal, octal and hex IPv4 spellings into dotted quads.
 */
export function checkUserRelayUrl(raw: string, policy: UserRelayPolicy): { url: string; host: string } {
  let parsed: URL;
  try {
    parsed = new URL(raw.trim());
  } catch {
    throw new RelayRefusedError('not a URL');
  }
  if (parsed.protocol !== 'wss:' && !(policy.allowWs && parsed.protocol === 'ws:')) {
    throw new RelayRefusedError(policy.allowWs ? 'must be a ws:// or wss:// URL' : 'must be a wss:// URL');
  }
  if (parsed.username || parsed.password) throw new RelayRefusedError('must not carry a user name or password');
  const host = hostOf(parsed);
  if (!host) throw new RelayRefusedError('has no host');
  if (policy.allowlist.length > 0 && !policy.allowlist.includes(host))
    throw new RelayRefusedError('is not on the allowed relay list');
  if (!policy.allowPrivate) {
    if (isIP(host) !== 0 ? !isPublicAddress(host) : isLocalName(host))
      throw new RelayRefusedError('is not a public address');
  }
  const url = normalizeRelayUrl(parsed.toString());
  if (url === undefined) throw new RelayRefusedError('not a relay URL');
  return { url, host };
}

export type Resolver = (
  hostname: string,
  options: LookupAllOptions,
  callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
) => void;

const systemResolver: Resolver = (hostname, options, callback) => dnsLookup(hostname, options, callback);

/** Every address `host` resolves to, each checked; refuses if any one is not public. */
function resolvePublic(
  host: string,
  resolve: Resolver,
  callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
): void {
  resolve(host, { all: true }, (err, addresses) => {
    if (err) return callback(err, []);
    const bad = addresses.find((a) => !isPublicAddress(a.address));
    if (bad || addresses.length === 0) {
      const refused: NodeJS.ErrnoException = new RelayRefusedError(`${host} resolves to a non-public address`);
      refused.code = 'ERELAYREFUSED';
      return callback(refused, []);
    }
    callback(null, addresses);
  });
}

/**
 * A `lookup` for sockets to user relays (`ws`, `net.connect`): resolves, checks every address, and hands
 * the socket only checked addresses, so the address connected to is the address checked. Literal IPs
 * never reach a lookup: checkUserRelayUrl must have passed them first.
 */
export function publicOnlyLookup(resolve: Resolver = systemResolver): LookupFunction {
  return (hostname, options, callback) => {
    resolvePublic(hostname, resolve, (err, addresses) => {
      if (err) return callback(err, '', 0);
      const family = options.family === 4 || options.family === 6 ? options.family : 0;
      const usable = family ? addresses.filter((a) => a.family === family) : addresses;
      if (usable.length === 0)
        return callback(
          Object.assign(new Error(`no IPv${family} address for ${hostname}`), { code: 'ENOTFOUND' }),
          '',
          0,
        );
      if (options.all) return callback(null, usable);
      callback(null, usable[0]!.address, usable[0]!.family);
    });
  };
}

/**
 * The creation-time check of a host name: refused when it resolves to a non-public address. A name that
 * does not resolve now (or not within `timeoutMs`) is let through: it can do no harm, and the connect-time
 * lookup checks it again.
 */
export function checkResolvesPublic(host: string, resolve: Resolver = systemResolver, timeoutMs = 2000): Promise<void> {
  if (isIP(host) !== 0) return Promise.resolve();
  return new Promise<void>((ok, fail) => {
    const timer = setTimeout(ok, timeoutMs);
    resolvePublic(host, resolve, (err) => {
      clearTimeout(timer);
      if (err instanceof RelayRefusedError) fail(err);
      else ok();
    });
  });
}

/** The policy the settings describe. */
export function userRelayPolicy(config: {
  USER_RELAYS_ALLOW_WS: boolean;
  USER_RELAYS_ALLOW_PRIVATE: boolean;
  USER_RELAYS_ALLOWLIST: string[];
}): UserRelayPolicy {
  return {
    allowWs: config.USER_RELAYS_ALLOW_WS,
    allowPrivate: config.USER_RELAYS_ALLOW_PRIVATE,
    allowlist: config.USER_RELAYS_ALLOWLIST,
  };
}
