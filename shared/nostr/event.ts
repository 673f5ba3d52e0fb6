// NIP-01 events: validation of what a client asks us to sign, serialization, id, signing and verification.
//
// created_at: any integer second in 0..2^32-1 is accepted, including the far future. The signer signs what
// the key's owner asks for; freshness windows are a relay's rule (and a policy's, if an authorization
// wants one), and a back- or forward-dated event is legitimate for drafts and scheduled posts.
import { hash as digest } from 'node:crypto';
import type { NostrEvent, UnsignedEvent } from './types.js';
import { cryptoBackend } from './crypto-backend.js';
import { getPublicKeyHex, InvalidKeyError } from './keys.js';
import { bytesToHex, hexToBytes, isLowerHex } from './hex.js';

export const EVENT_LIMITS = {
  contentBytes: 256 * 1024,
  tags: 2000,
  stringsPerTag: 100,
  tagStringBytes: 64 * 1024,
  /** The signed event as JSON (id, pubkey, sig included), in UTF-8 bytes. */
  eventBytes: 512 * 1024,
  /** A JSON-string input may be longer than the event it encodes (escapes), but not without bound. */
  jsonInputChars: 4 * 512 * 1024,
  maxCreatedAt: 2 ** 32 - 1,
  maxKind: 65535,
} as const;

export class EventValidationError extends Error {
  override readonly name = 'EventValidationError';
}

function fail(message: string): never {
  throw new EventValidationError(message);
}

function utf8Length(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/** Accepts an object or its JSON string; returns a fresh event holding only the four NIP-01 fields. */
export function validateUnsignedEvent(input: unknown): UnsignedEvent {
  let value = input;
  if (typeof value === 'string') {
    if (value.length > EVENT_LIMITS.jsonInputChars) fail('event: JSON is too large');
    try {
      value = JSON.parse(value);
    } catch {
      fail('event: not valid JSON');
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('event: must be an object');
  const raw = value as Record<string, unknown>;

  const { kind, content, tags, created_at } = raw;
  if (!Number.isInteger(kind) || (kind as number) < 0 || (kind as number) > EVENT_LIMITS.maxKind) {
    fail(`event.kind: must be an integer from 0 to ${EVENT_LIMITS.maxKind}`);
  }
  if (typeof content !== 'string') fail('event.content: must be a string');
  if (utf8Length(content) > EVENT_LIMITS.contentBytes)
    fail(`event.content: longer than ${EVENT_LIMITS.contentBytes} bytes`);
  if (
    !Number.isInteger(created_at) ||
    (created_at as number) < 0 ||
    (created_at as number) > EVENT_LIMITS.maxCreatedAt
  ) {
    fail('event.created_at: must be an integer number of seconds from 0 to 2^32-1');
  }
  const cleanTags = validateTags(tags);

  const event: UnsignedEvent = { kind: kind as number, content, tags: cleanTags, created_at: created_at as number };
  // The bound settles every usual event without serializing it; only a large one is measured exactly.
  if (signedEventBytesBound(event) > EVENT_LIMITS.eventBytes && signedEventBytes(event) > EVENT_LIMITS.eventBytes)
    fail(`event: larger than ${EVENT_LIMITS.eventBytes} bytes when signed`);
  return event;
}

function validateTags(tags: unknown): string[][] {
  if (!Array.isArray(tags)) fail('event.tags: must be an array of arrays of strings');
  if (tags.length > EVENT_LIMITS.tags) fail(`event.tags: more than ${EVENT_LIMITS.tags} tags`);
  const clean: string[][] = [];
  for (let i = 0; i < tags.length; i++) {
    const tag: unknown = tags[i];
    if (!Array.isArray(tag)) fail(`event.tags[${i}]: must be an array of strings`);
    if (tag.length > EVENT_LIMITS.stringsPerTag)
      fail(`event.tags[${i}]: more than ${EVENT_LIMITS.stringsPerTag} strings`);
    for (let j = 0; j < tag.length; j++) {
      const item: unknown = tag[j];
      if (typeof item !== 'string') fail(`event.tags[${i}][${j}]: must be a string`);
      if (item.length > EVENT_LIMITS.tagStringBytes / 3 && utf8Length(item) > EVENT_LIMITS.tagStringBytes) {
        fail(`event.tags[${i}][${j}]: longer than ${EVENT_LIMITS.tagStringBytes} bytes`);
      }
    }
    clean.push([...(tag as string[])]);
  }
  return clean;
}

// id (64 hex) + pubkey (64 hex) + sig (128 hex) with their keys, quotes and commas.
const SIGNED_FIELDS_OVERHEAD = ',"id":"","pubkey":"","sig":""'.length + 64 + 64 + 128;

/**
 * At least signedEventBytes, without serializing: JSON turns one UTF-16 unit into at most 6 UTF-8 bytes
 * (`\u0001`, or a lone surrogate's `\udc00`); the rest is field names, quotes, brackets, commas and at
 * most 10 + 5 digits.
 */
function signedEventBytesBound(event: UnsignedEvent): number {
  let bound = SIGNED_SKELETON_BYTES + 6 * event.content.length;
  for (const tag of event.tags) {
    bound += 3; // brackets and a comma
    for (const item of tag) bound += 3 + 6 * item.length; // quotes and a comma
  }
  return bound;
}

// {"created_at":<10 digits>,"kind":<5 digits>,"tags":[],"content":""} and the signed fields.
const SIGNED_SKELETON_BYTES = '{"created_at":,"kind":,"tags":[],"content":""}'.length + 10 + 5 + SIGNED_FIELDS_OVERHEAD;

export function signedEventBytes(event: UnsignedEvent): number {
  const body = JSON.stringify({
    created_at: event.created_at,
    kind: event.kind,
    tags: event.tags,
    content: event.content,
  });
  return utf8Length(body) + SIGNED_FIELDS_OVERHEAD;
}

/** The NIP-01 commitment: `[0, pubkey, created_at, kind, tags, content]` as compact JSON. */
export function serializeEvent(event: UnsignedEvent & { pubkey: string }): string {
  return JSON.stringify([0, event.pubkey, event.created_at, event.kind, event.tags, event.content]);
}

export function getEventHashBytes(event: UnsignedEvent & { pubkey: string }): Uint8Array {
  return new Uint8Array(digest('sha256', serializeEvent(event), 'buffer'));
}

export function getEventHash(event: UnsignedEvent & { pubkey: string }): string {
  return bytesToHex(getEventHashBytes(event));
}

/** A signed event with its id, signature and public key also as bytes, as they were signed. */
export interface SignedEventBytes {
  event: NostrEvent;
  id: Uint8Array;
  sig: Uint8Array;
  pubkey: Uint8Array;
}

/**
 * Fills in pubkey, id and sig with the thread's crypto backend. sk is a 32-byte secret or the backend's key
 * material (crypto-backend.ts). With pubkeyHex (the signer's key, already known) no public key is derived
 * per signature; a key that does not belong to it is refused with InvalidKeyError.
 */
export function finalizeEvent(unsigned: UnsignedEvent, sk: Uint8Array, pubkeyHex?: string): NostrEvent {
  return signEventBytes(unsigned, sk, pubkeyHex).event;
}

/**
 * finalizeEvent, also giving the id, signature and public key as the bytes the event's hex encodes, so a
 * caller can verify the signature without decoding them again. aux32: BIP-340 auxiliary randomness (the
 * backend draws its own when absent).
 */
export function signEventBytes(
  unsigned: UnsignedEvent,
  sk: Uint8Array,
  pubkeyHex?: string,
  aux32?: Uint8Array,
): SignedEventBytes {
  const { event, id, pubkey } = eventToSign(unsigned, pubkeyHex ?? getPublicKeyHex(sk));
  const sig = cryptoBackend().signWithKey(id, sk, pubkey, aux32);
  return { event: { ...event, id: bytesToHex(id), sig: bytesToHex(sig) }, id, sig, pubkey };
}

/** What a signature commits to: the event with its signer, its id (the message signed), the signer's bytes. */
export interface EventToSign {
  event: UnsignedEvent & { pubkey: string };
  id: Uint8Array;
  pubkey: Uint8Array;
}

/** The event with its pubkey and the id to sign; InvalidKeyError for a signer pubkey that is not 64 hex. */
export function eventToSign(unsigned: UnsignedEvent, pubkeyHex: string): EventToSign {
  if (!isLowerHex(pubkeyHex, 64)) throw new InvalidKeyError('invalid signer pubkey');
  const event = {
    kind: unsigned.kind,
    content: unsigned.content,
    tags: unsigned.tags,
    created_at: unsigned.created_at,
    pubkey: pubkeyHex,
  };
  return { event, id: getEventHashBytes(event), pubkey: hexToBytes(pubkeyHex) };
}

/** The signed event with the signature's hex. */
export function withSignature(e: EventToSign, sig: Uint8Array): NostrEvent {
  return { ...e.event, id: bytesToHex(e.id), sig: bytesToHex(sig) };
}

/** What a signature check of a received event takes: its signature, id and pubkey as bytes. */
export interface SignatureToCheck {
  sig: Uint8Array;
  id: Uint8Array;
  pubkey: Uint8Array;
}

/**
 * The event's signature, id and pubkey as bytes when its shape is right and its id is the hash of its
 * content; undefined otherwise. What is left to check is the signature.
 */
export function signatureToCheck(ev: NostrEvent): SignatureToCheck | undefined {
  if (typeof ev !== 'object' || ev === null) return undefined;
  if (!isLowerHex(ev.id, 64) || !isLowerHex(ev.pubkey, 64) || !isLowerHex(ev.sig, 128)) return undefined;
  if (
    !Number.isInteger(ev.kind) ||
    !Number.isInteger(ev.created_at) ||
    typeof ev.content !== 'string' ||
    !Array.isArray(ev.tags)
  ) {
    return undefined;
  }
  let hash: Uint8Array;
  try {
    hash = getEventHashBytes(ev);
  } catch {
    return undefined;
  }
  if (bytesToHex(hash) !== ev.id) return undefined;
  return { sig: hexToBytes(ev.sig), id: hash, pubkey: hexToBytes(ev.pubkey) };
}

/** True when the id is the hash of the event's content and the signature is valid for its pubkey. */
export function verifyEvent(ev: NostrEvent): boolean {
  const check = signatureToCheck(ev);
  return check !== undefined && cryptoBackend().verify(check.sig, check.id, check.pubkey);
}
