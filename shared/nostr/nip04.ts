// NIP-04 (legacy) encrypted direct messages: AES-256-CBC keyed by the raw ECDH shared x coordinate,
// written as `<base64 ciphertext>?iv=<base64 iv>`. Still needed: NIP-46 clients may speak it.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { ecdhSharedX } from './ecdh.js';

export class Nip04Error extends Error {
  override readonly name = 'Nip04Error';
}

/** The AES key of a NIP-04 conversation (the same from either side). */
export function getSharedX(sk: Uint8Array, peerPubHex: string): Uint8Array {
  return ecdhSharedX(sk, peerPubHex);
}

const BASE64_PATTERN = /^[A-Za-z0-9+/]*={0,2}$/;

function decodeBase64(text: string, what: string): Buffer {
  if (text.length % 4 !== 0 || !BASE64_PATTERN.test(text)) throw new Nip04Error(`invalid base64 in ${what}`);
  return Buffer.from(text, 'base64');
}

function requireKey(sharedX: Uint8Array): void {
  if (!(sharedX instanceof Uint8Array) || sharedX.length !== 32) throw new Nip04Error('invalid shared key length');
}

export function nip04Encrypt(sharedX: Uint8Array, plaintext: string): string {
  requireKey(sharedX);
  if (typeof plaintext !== 'string') throw new Nip04Error('plaintext must be a string');
  const iv = randomBytes(16);
  const cipher = createCipheriv('aes-256-cbc', sharedX, iv);
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return `${ciphertext.toString('base64')}?iv=${iv.toString('base64')}`;
}

export function nip04Decrypt(sharedX: Uint8Array, payload: string): string {
  requireKey(sharedX);
  if (typeof payload !== 'string') throw new Nip04Error('payload must be a string');
  const parts = payload.split('?iv=');
  if (parts.length !== 2) throw new Nip04Error('invalid payload: expected <ciphertext>?iv=<iv>');
  const ciphertext = decodeBase64(parts[0] as string, 'ciphertext');
  const iv = decodeBase64(parts[1] as string, 'iv');
  if (iv.length !== 16) throw new Nip04Error('invalid iv: must be 16 bytes');
  if (ciphertext.length === 0 || ciphertext.length % 16 !== 0) throw new Nip04Error('invalid ciphertext length');
  const decipher = createDecipheriv('aes-256-cbc', sharedX, iv);
  try {
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString('utf8');
  } catch {
    // Wrong key or tampered data: CBC can only tell us the padding is wrong.
    throw new Nip04Error('invalid ciphertext: decryption failed');
  }
}
