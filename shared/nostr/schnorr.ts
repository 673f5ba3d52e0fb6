// BIP-340 Schnorr over secp256k1 behind one interface, two implementations:
// - fastSchnorr: libsecp256k1 compiled to WASM (tiny-secp256k1), about 8x faster than pure JS; the farm's
//   fallback where the system's libsecp256k1 is missing (the native backend: crypto-backend.ts).
// - referenceSchnorr: @noble/curves, audited pure JS; the portable reference the tests cross-check against.
import { randomBytes } from 'node:crypto';
import * as ecc from 'tiny-secp256k1';
import { schnorr as nobleSchnorr, secp256k1 as nobleSecp256k1 } from '@noble/curves/secp256k1.js';

export interface SchnorrBackend {
  readonly name: string;
  /** Signs a 32-byte message. aux32 defaults to 32 fresh random bytes, as BIP-340 recommends. */
  sign(msg32: Uint8Array, sk: Uint8Array, aux32?: Uint8Array): Uint8Array;
  /** False for any invalid signature, public key or message; never throws on bad input. */
  verify(sig: Uint8Array, msg32: Uint8Array, pubX: Uint8Array): boolean;
  /** The 32-byte x-only public key. Throws on a secret key that is zero or not below the curve order. */
  getPublicKey(sk: Uint8Array): Uint8Array;
}

export function requireLength(bytes: Uint8Array, length: number, what: string): void {
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) {
    throw new TypeError(`${what} must be ${length} bytes`);
  }
}

/** A 32-byte secret in [1, n-1]; the error never describes the value. */
export function requireSecretKey(sk: Uint8Array): void {
  requireLength(sk, 32, 'secret key');
  if (!ecc.isPrivate(sk)) throw new RangeError('secret key is out of range');
}

export const fastSchnorr: SchnorrBackend = {
  name: 'libsecp256k1-wasm (tiny-secp256k1)',
  sign(msg32, sk, aux32 = randomBytes(32)) {
    requireLength(msg32, 32, 'message');
    requireLength(aux32, 32, 'aux');
    requireSecretKey(sk);
    return ecc.signSchnorr(msg32, sk, aux32);
  },
  verify(sig, msg32, pubX) {
    if (!(sig instanceof Uint8Array) || sig.length !== 64) return false;
    if (!(msg32 instanceof Uint8Array) || msg32.length !== 32) return false;
    if (!(pubX instanceof Uint8Array) || pubX.length !== 32) return false;
    try {
      // tiny-secp256k1 throws (rather than returning false) for a public key that is not on the curve.
      return ecc.verifySchnorr(msg32, pubX, sig);
    } catch {
      return false;
    }
  },
  getPublicKey(sk) {
    requireSecretKey(sk);
    return ecc.xOnlyPointFromScalar(sk);
  },
};

// Range-checked here so that the library's own error text (which may describe the value) never surfaces.
function requireNobleSecretKey(sk: Uint8Array): void {
  requireLength(sk, 32, 'secret key');
  if (!nobleSecp256k1.utils.isValidSecretKey(sk)) throw new RangeError('secret key is out of range');
}

export const referenceSchnorr: SchnorrBackend = {
  name: '@noble/curves',
  sign(msg32, sk, aux32 = randomBytes(32)) {
    requireLength(msg32, 32, 'message');
    requireLength(aux32, 32, 'aux');
    requireNobleSecretKey(sk);
    return nobleSchnorr.sign(msg32, sk, aux32);
  },
  verify(sig, msg32, pubX) {
    if (!(sig instanceof Uint8Array) || sig.length !== 64) return false;
    if (!(msg32 instanceof Uint8Array) || msg32.length !== 32) return false;
    if (!(pubX instanceof Uint8Array) || pubX.length !== 32) return false;
    try {
      return nobleSchnorr.verify(sig, msg32, pubX);
    } catch {
      return false;
    }
  },
  getPublicKey(sk) {
    requireNobleSecretKey(sk);
    return nobleSchnorr.getPublicKey(sk);
  },
};
