// secp256k1 ECDH as Nostr uses it (NIP-04 and NIP-44): the x coordinate of sk * P, where P is the
// even-y point whose x is the peer's x-only public key. Unhashed, unlike libsecp256k1's default ECDH.
import { cryptoBackend } from './crypto-backend.js';
import { InvalidKeyError } from './key-error.js';
import { hexToBytes, isLowerHex } from './hex.js';

/** sk: a 32-byte secret or the backend's key material (crypto-backend.ts). */
export function ecdhSharedX(sk: Uint8Array, peerPubHex: string): Uint8Array {
  if (!isLowerHex(peerPubHex, 64)) throw new InvalidKeyError('invalid peer pubkey');
  return cryptoBackend().ecdhX(sk, hexToBytes(peerPubHex));
}
