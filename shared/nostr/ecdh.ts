// secp256k1 ECDH as Nostr uses it (NIP-04 and NIP-44): the x coordinate of sk * P, where P is the
// even-y point whose x is the peer's x-only public key. Unhashed, unlike libsecp256k1's default ECDH.
import * as ecc from 'tiny-secp256k1';
import { InvalidKeyError, isValidPubkeyHex } from './keys.js';
import { hexToBytes } from './hex.js';

export function ecdhSharedX(sk: Uint8Array, peerPubHex: string): Uint8Array {
  if (!(sk instanceof Uint8Array) || !ecc.isPrivate(sk)) throw new InvalidKeyError('secret key is out of range');
  if (!isValidPubkeyHex(peerPubHex)) throw new InvalidKeyError('invalid peer pubkey');
  const evenYPoint = new Uint8Array(33);
  evenYPoint[0] = 0x02;
  evenYPoint.set(hexToBytes(peerPubHex), 1);
  const shared = ecc.pointMultiply(evenYPoint, sk, true);
  // Unreachable for a valid point and scalar (prime order group), kept so a library change cannot slip by.
  if (shared === null) throw new InvalidKeyError('invalid peer pubkey');
  return shared.slice(1, 33);
}
