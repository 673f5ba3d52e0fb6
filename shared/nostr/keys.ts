// Nostr key parsing and encoding. Secret keys are Uint8Arrays; public keys travel as 64-char lowercase hex.
// Errors about a key never quote the key: the input may be a real secret pasted into the wrong field.
import { randomBytes } from 'node:crypto';
import * as ecc from 'tiny-secp256k1';
import { decode as nip19Decode, npubEncode as nip19NpubEncode, nsecEncode as nip19NsecEncode } from 'nostr-tools/nip19';
import { cryptoBackend } from './crypto-backend.js';
import { InvalidKeyError } from './key-error.js';
import { bytesToHex, hexToBytes, isLowerHex } from './hex.js';

export { InvalidKeyError };

/** A uniformly random secret key in [1, n-1] (rejection sampling, so no modulo bias). */
export function generateSecretKey(): Uint8Array {
  for (;;) {
    const sk = new Uint8Array(randomBytes(32));
    if (ecc.isPrivate(sk)) return sk;
  }
}

export function getPublicKeyHex(sk: Uint8Array): string {
  return bytesToHex(cryptoBackend().getPublicKey(sk));
}

const HEX64 = /^[0-9a-fA-F]{64}$/;

/**
 * Accepts `nsec1…` (bech32, either all lower or all upper case) or 64 hex characters of either case,
 * with surrounding whitespace ignored. Rejects anything malformed, zero, or not below the curve order.
 */
export function parseSecretKey(input: string): Uint8Array {
  if (typeof input !== 'string') throw new InvalidKeyError('secret key must be a string');
  const text = input.trim();
  let sk: Uint8Array;
  if (HEX64.test(text)) {
    sk = hexToBytes(text);
  } else if (text.slice(0, 5).toLowerCase() === 'nsec1') {
    sk = decodeNsec(text);
  } else {
    throw new InvalidKeyError('secret key must be an nsec1 string or 64 hex characters');
  }
  if (!ecc.isPrivate(sk)) throw new InvalidKeyError('secret key is out of range (zero or not below the curve order)');
  return sk;
}

function decodeNsec(text: string): Uint8Array {
  // bech32 forbids mixed case; an all-uppercase string is valid and means the same as its lowercase form.
  if (text !== text.toLowerCase() && text !== text.toUpperCase()) {
    throw new InvalidKeyError('nsec is not valid bech32 (mixed case)');
  }
  let decoded: ReturnType<typeof nip19Decode>;
  try {
    decoded = nip19Decode(text.toLowerCase());
  } catch {
    throw new InvalidKeyError('nsec is not valid bech32');
  }
  if (decoded.type !== 'nsec' || decoded.data.length !== 32)
    throw new InvalidKeyError('nsec does not hold a 32-byte secret key');
  return decoded.data;
}

export function nsecEncode(sk: Uint8Array): string {
  if (!(sk instanceof Uint8Array) || !ecc.isPrivate(sk)) throw new InvalidKeyError('secret key is not valid');
  return nip19NsecEncode(sk);
}

export function npubEncode(pubHex: string): string {
  if (!isValidPubkeyHex(pubHex))
    throw new InvalidKeyError('public key must be 64 lowercase hex characters of a curve point');
  return nip19NpubEncode(pubHex);
}

/** 64 lowercase hex characters that are the x coordinate of a point on secp256k1. */
export function isValidPubkeyHex(s: unknown): s is string {
  return isLowerHex(s, 64) && cryptoBackend().isXonlyPoint(hexToBytes(s));
}
