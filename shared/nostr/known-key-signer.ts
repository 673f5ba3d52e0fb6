// BIP-340 signing for a signer that already knows its public key: one multiplication of G instead of two.
// The WASM backend's signer (crypto-backend.ts); the native backend signs with cached libsecp256k1 keypairs
// instead, whose timing does not depend on the secret as this BigInt arithmetic's last step does.
//
// libsecp256k1's sign derives the key pair from the secret on every call (a multiplication of G, about
// half its cost in WASM) and then computes the nonce point (another). A worker signs with the same keys
// over and over and has each public key at hand; all BIP-340 needs from the key pair beyond that is the
// y parity of d·G, to sign with d or n − d. That parity is public data: it is learnt once per key and
// thread, from a multiplication that also proves the secret belongs to the public key, and remembered
// with a fingerprint of that secret (HMAC under a key of this signer's own), so every later call is held
// to the same binding for a few microseconds: a secret that is not the public key's is always refused.
//
// The rest is BIP-340 section "Default Signing" step by step: tagged hashes (node:crypto), the nonce
// point k·G through libsecp256k1 (constant time), and s = k + e·d mod n. Scalars are BigInts here, as in
// @noble/curves. The tests hold it byte for byte to the official BIP-340 vectors and to libsecp256k1's own
// sign; ops.ts verifies with libsecp256k1 every signature returned to an app.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import * as ecc from 'tiny-secp256k1';
import { InvalidKeyError } from './key-error.js';
import { requireLength, requireSecretKey } from './schnorr.js';

const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

/** sha256(tag) twice: the prefix of every hash under that BIP-340 tag. */
function tagPrefix(tag: string): Buffer {
  const h = createHash('sha256').update(tag).digest();
  return Buffer.concat([h, h]);
}

const AUX_TAG = tagPrefix('BIP0340/aux');
const NONCE_TAG = tagPrefix('BIP0340/nonce');
const CHALLENGE_TAG = tagPrefix('BIP0340/challenge');

function taggedHash(prefix: Buffer, ...parts: Uint8Array[]): Buffer {
  const h = createHash('sha256').update(prefix);
  for (const part of parts) h.update(part);
  return h.digest();
}

// Byte by byte rather than through hex: a hex string of a secret or a nonce would stay in the heap, unwipeable,
// until the GC takes it.
function toScalar(bytes: Uint8Array): bigint {
  let x = 0n;
  for (const b of bytes) x = (x << 8n) | BigInt(b);
  return x;
}

function scalarBytes(x: bigint): Uint8Array {
  const out = new Uint8Array(32);
  for (let i = 31; i >= 0; i--) {
    out[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return out;
}

export class KnownKeySigner {
  /** x-only public key (hex) -> its secret's fingerprint and d·G's y parity. Insertion order is age: the oldest goes first when full. */
  private readonly known = new Map<string, { fingerprint: Buffer; oddY: boolean }>();
  /** Keys the fingerprints; never leaves this object, so a fingerprint says nothing outside it. */
  private readonly fingerprintKey = randomBytes(32);

  /** @param maxKeys public keys whose parity is remembered (about 200 bytes each). */
  constructor(private readonly maxKeys = 50_000) {}

  /** Keys whose parity is remembered. */
  get size(): number {
    return this.known.size;
  }

  /**
   * A BIP-340 signature of msg32 by sk, whose x-only public key the caller says is pubX. A secret that
   * does not belong to pubX is refused (InvalidKeyError).
   */
  sign(msg32: Uint8Array, sk: Uint8Array, pubX: Uint8Array, aux32: Uint8Array = randomBytes(32)): Uint8Array {
    requireLength(msg32, 32, 'message');
    requireSecretKey(sk);
    requireLength(pubX, 32, 'public key');
    requireLength(aux32, 32, 'aux');
    const d = this.isOddY(sk, pubX) ? ecc.privateNegate(sk) : Uint8Array.from(sk);
    const t = taggedHash(AUX_TAG, aux32);
    for (let i = 0; i < 32; i++) t[i] = (t[i] as number) ^ (d[i] as number);
    const k0 = toScalar(taggedHash(NONCE_TAG, t, pubX, msg32)) % N;
    t.fill(0);
    if (k0 === 0n) {
      d.fill(0);
      throw new Error('nonce is zero'); // probability 2^-256; BIP-340 fails here too
    }
    const kBytes = scalarBytes(k0);
    const R = ecc.pointFromScalar(kBytes, true)!;
    kBytes.fill(0);
    const k = R[0] === 3 ? N - k0 : k0;
    const rx = R.subarray(1);
    const e = toScalar(taggedHash(CHALLENGE_TAG, rx, pubX, msg32)) % N;
    const s = (k + e * toScalar(d)) % N;
    d.fill(0);
    const sig = new Uint8Array(64);
    sig.set(rx, 0);
    sig.set(scalarBytes(s), 32);
    return sig;
  }

  private isOddY(sk: Uint8Array, pubX: Uint8Array): boolean {
    const id = Buffer.from(pubX.buffer, pubX.byteOffset, 32).toString('hex');
    const fingerprint = createHmac('sha256', this.fingerprintKey).update(sk).digest();
    const known = this.known.get(id);
    if (known && timingSafeEqual(known.fingerprint, fingerprint)) return known.oddY;
    // First sight of this key, or another secret for it (d and n − d share an x-only public key).
    const P = ecc.pointFromScalar(sk, true)!;
    if (!Buffer.from(P.buffer, P.byteOffset + 1, 32).equals(Buffer.from(pubX.buffer, pubX.byteOffset, 32))) {
      throw new InvalidKeyError('secret key does not match the signer pubkey');
    }
    this.known.delete(id);
    if (this.known.size >= this.maxKeys) this.known.delete(this.known.keys().next().value!);
    const oddY = P[0] === 3;
    this.known.set(id, { fingerprint, oddY });
    return oddY;
  }
}
