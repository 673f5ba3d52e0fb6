// NIP-44 v2 encrypted payloads, with the extended-length padding of the current spec (nips PR #1907):
// a plaintext under 65536 bytes gets the original 2-byte big-endian length prefix (byte-identical to
// every v2 implementation); from 65536 bytes up to 2^32-1 the prefix is two zero bytes followed by the
// length as a 4-byte big-endian integer. The padded size is prefix + calcPaddedLen(length) either way,
// and a zero u16 is never a valid short prefix (length 0 is invalid), so the two forms cannot collide.
//
// Primitives come from node:crypto (OpenSSL): ChaCha20 and HMAC-SHA256 there are several times faster
// than pure JS on long messages, and the conversation key's ECDH runs in libsecp256k1 (see ecdh.ts).
import { createCipheriv, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { ecdhSharedX } from './ecdh.js';

export class Nip44Error extends Error {
  override readonly name = 'Nip44Error';
}

const VERSION = 2;
const SALT = Buffer.from('nip44-v2', 'utf8');
const MIN_PLAINTEXT_BYTES = 1;
const MAX_PLAINTEXT_BYTES = 2 ** 32 - 1;
const EXTENDED_PREFIX_THRESHOLD = 65536;
/** Smallest valid payload: 1 version + 32 nonce + 34 (2-byte prefix + 32 padded) + 32 MAC = 99 bytes. */
const MIN_PAYLOAD_BYTES = 99;
const MIN_PAYLOAD_CHARS = 132;
const BASE64_PATTERN = /^[A-Za-z0-9+/]*={0,2}$/;

/** HKDF-extract(IKM = ECDH shared x, salt = "nip44-v2"). Symmetric: conv(a, B) == conv(b, A). */
export function getConversationKey(sk: Uint8Array, peerPubHex: string): Uint8Array {
  const sharedX = ecdhSharedX(sk, peerPubHex);
  try {
    return conversationKeyOf(sharedX);
  } finally {
    sharedX.fill(0);
  }
}

/** The conversation key of an ECDH shared x (the caller wipes sharedX). */
export function conversationKeyOf(sharedX: Uint8Array): Uint8Array {
  return new Uint8Array(hmacSha256(SALT, sharedX));
}

export interface MessageKeys {
  chachaKey: Uint8Array;
  chachaNonce: Uint8Array;
  hmacKey: Uint8Array;
}

/** HKDF-expand(PRK = conversation key, info = nonce, L = 76), sliced 32 / 12 / 32. */
export function getMessageKeys(convKey: Uint8Array, nonce: Uint8Array): MessageKeys {
  if (!(convKey instanceof Uint8Array) || convKey.length !== 32)
    throw new Nip44Error('invalid conversation key length');
  if (!(nonce instanceof Uint8Array) || nonce.length !== 32) throw new Nip44Error('invalid nonce length');
  const t1 = hmacSha256(convKey, nonce, ONE);
  const t2 = hmacSha256(convKey, t1, nonce, TWO);
  const t3 = hmacSha256(convKey, t2, nonce, THREE);
  const okm = Buffer.concat([t1, t2, t3]);
  return {
    chachaKey: okm.subarray(0, 32),
    chachaNonce: okm.subarray(32, 44),
    hmacKey: okm.subarray(44, 76),
  };
}
const ONE = Uint8Array.of(1);
const TWO = Uint8Array.of(2);
const THREE = Uint8Array.of(3);

function hmacSha256(key: Uint8Array, ...parts: Uint8Array[]): Buffer {
  const mac = createHmac('sha256', key);
  for (const part of parts) mac.update(part);
  return mac.digest();
}

/** Padded size of the message body, not counting the length prefix. */
export function calcPaddedLen(unpaddedLen: number): number {
  if (!Number.isSafeInteger(unpaddedLen) || unpaddedLen < 1) throw new Nip44Error('invalid plaintext length');
  if (unpaddedLen <= 32) return 32;
  const nextPower = 2 ** (Math.floor(Math.log2(unpaddedLen - 1)) + 1);
  const chunk = nextPower <= 256 ? 32 : nextPower / 8;
  return chunk * (Math.floor((unpaddedLen - 1) / chunk) + 1);
}

export function pad(plaintext: string): Buffer {
  const unpadded = Buffer.from(plaintext, 'utf8');
  const len = unpadded.length;
  if (len < MIN_PLAINTEXT_BYTES || len > MAX_PLAINTEXT_BYTES) {
    throw new Nip44Error(`invalid plaintext length: must be 1 to ${MAX_PLAINTEXT_BYTES} bytes`);
  }
  const prefixLen = len >= EXTENDED_PREFIX_THRESHOLD ? 6 : 2;
  const padded = Buffer.alloc(prefixLen + calcPaddedLen(len));
  if (prefixLen === 2) padded.writeUInt16BE(len, 0);
  else padded.writeUInt32BE(len, 2);
  unpadded.copy(padded, prefixLen);
  return padded;
}

export function unpad(padded: Uint8Array): string {
  const buf = Buffer.from(padded.buffer, padded.byteOffset, padded.byteLength);
  if (buf.length < 2) throw new Nip44Error('invalid padding');
  let len = buf.readUInt16BE(0);
  let prefixLen = 2;
  if (len === 0) {
    if (buf.length < 6) throw new Nip44Error('invalid padding');
    len = buf.readUInt32BE(2);
    prefixLen = 6;
    if (len < EXTENDED_PREFIX_THRESHOLD) throw new Nip44Error('invalid padding');
  }
  if (buf.length !== prefixLen + calcPaddedLen(len)) throw new Nip44Error('invalid padding');
  return buf.toString('utf8', prefixLen, prefixLen + len);
}

function chacha20(key: Uint8Array, nonce12: Uint8Array, data: Uint8Array): Buffer {
  // OpenSSL's chacha20 takes a 16-byte IV: a 32-bit little-endian block counter (0 here, as RFC 8439
  // and NIP-44 specify), then the 96-bit nonce.
  const iv = Buffer.alloc(16);
  iv.set(nonce12, 4);
  const cipher = createCipheriv('chacha20', key, iv);
  return Buffer.concat([cipher.update(data), cipher.final()]);
}

export function nip44Encrypt(plaintext: string, convKey: Uint8Array, nonce: Uint8Array = randomBytes(32)): string {
  if (typeof plaintext !== 'string') throw new Nip44Error('plaintext must be a string');
  const { chachaKey, chachaNonce, hmacKey } = getMessageKeys(convKey, nonce);
  const ciphertext = chacha20(chachaKey, chachaNonce, pad(plaintext));
  const mac = hmacSha256(hmacKey, nonce, ciphertext);
  return Buffer.concat([Uint8Array.of(VERSION), nonce, ciphertext, mac]).toString('base64');
}

interface DecodedPayload {
  nonce: Uint8Array;
  ciphertext: Uint8Array;
  mac: Uint8Array;
}

function decodePayload(payload: unknown): DecodedPayload {
  if (typeof payload !== 'string') throw new Nip44Error('payload must be a string');
  // '#' is the spec's reserved marker for a future non-base64 encoding: report it as a version problem.
  if (payload.startsWith('#')) throw new Nip44Error('unknown encryption version');
  if (payload.length < MIN_PAYLOAD_CHARS) throw new Nip44Error(`invalid payload length: ${payload.length}`);
  // Buffer's base64 decoder skips characters it does not know, so check the alphabet and that the
  // text is the canonical encoding of what it decodes to.
  if (payload.length % 4 !== 0 || !BASE64_PATTERN.test(payload)) throw new Nip44Error('invalid base64');
  const data = Buffer.from(payload, 'base64');
  if (data.toString('base64') !== payload) throw new Nip44Error('invalid base64');
  if (data.length < MIN_PAYLOAD_BYTES) throw new Nip44Error(`invalid data length: ${data.length}`);
  if (data[0] !== VERSION) throw new Nip44Error(`unknown encryption version ${data[0]}`);
  return {
    nonce: data.subarray(1, 33),
    ciphertext: data.subarray(33, data.length - 32),
    mac: data.subarray(data.length - 32),
  };
}

export function nip44Decrypt(payload: string, convKey: Uint8Array): string {
  const { nonce, ciphertext, mac } = decodePayload(payload);
  const { chachaKey, chachaNonce, hmacKey } = getMessageKeys(convKey, nonce);
  const expectedMac = hmacSha256(hmacKey, nonce, ciphertext);
  if (!timingSafeEqual(expectedMac, mac)) throw new Nip44Error('invalid MAC');
  return unpad(chacha20(chachaKey, chachaNonce, ciphertext));
}
