// NIP-46 messages as they travel inside kind-24133 events: the request a client encrypts to a bunker,
// the response the bunker encrypts back, and how a payload says which encryption it uses.
import { isLowerHex } from '../nostr/hex.js';
import type { NostrEvent } from '../nostr/types.js';

export const NIP46_KIND = 24133;

export const NIP46_METHODS = [
  'connect',
  'get_public_key',
  'sign_event',
  'nip44_encrypt',
  'nip44_decrypt',
  'nip04_encrypt',
  'nip04_decrypt',
  'ping',
  'switch_relays',
  'logout',
] as const;

export type Nip46Method = (typeof NIP46_METHODS)[number];

export interface Nip46Request {
  id: string;
  method: string;
  params: unknown[];
}

export interface Nip46Response {
  id: string;
  result: string;
  error?: string;
}

/** Request ids are the client's; this bound keeps a hostile one from bloating the response. */
const MAX_REQUEST_ID = 128;

export type ParsedRequest =
  | { ok: true; request: Nip46Request }
  /** `id` is set when the request named one, so an error reply can still reach the client. */
  | { ok: false; id?: string; error: string };

export function parseNip46Request(json: string): ParsedRequest {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    return { ok: false, error: 'request is not JSON' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return { ok: false, error: 'request is not an object' };
  const { id, method, params } = value as Record<string, unknown>;
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_REQUEST_ID)
    return { ok: false, error: 'request id is missing or invalid' };
  if (typeof method !== 'string') return { ok: false, id, error: 'method must be a string' };
  if (params !== undefined && !Array.isArray(params)) return { ok: false, id, error: 'params must be an array' };
  return { ok: true, request: { id, method, params: (params as unknown[] | undefined) ?? [] } };
}

/** NIP-04 payloads end in `?iv=<base64>`; NIP-44 v2 payloads are plain base64 and never contain `?`. */
export function isNip04Payload(content: string): boolean {
  return content.includes('?iv=');
}

/** The bunker a request is addressed to: its first well-formed `p` tag. */
export function bunkerPubkeyOf(event: Pick<NostrEvent, 'tags'>): string | undefined {
  for (const tag of event.tags) {
    if (Array.isArray(tag) && tag[0] === 'p' && isLowerHex(tag[1], 64)) return tag[1];
  }
  return undefined;
}
