// The curve operations the farm needs (BIP-340 sign and verify, public keys, NIP-04/NIP-44 ECDH), from one
// of two builds of libsecp256k1:
// - native: the system's shared library through an FFI (secp256k1-native.ts), five times faster;
// - wasm: the same library compiled to WASM (tiny-secp256k1) with KnownKeySigner, the fallback where the
//   shared library is missing.
// A process chooses once at start (CRYPTO_BACKEND; bin/roles.ts) and hands the choice to its pool threads.
//
// "Key material" is what a key cache keeps for a secret key and what the crypto ops sign with: the native
// backend's 96-byte secp256k1_keypair (the public point computed once per key, not on every signature), or
// the 32-byte secret itself on WASM. Every function that takes key material also takes a bare 32-byte secret.
import { randomBytes } from 'node:crypto';
import * as ecc from 'tiny-secp256k1';
import { InvalidKeyError } from './key-error.js';
import { KnownKeySigner } from './known-key-signer.js';
import { fastSchnorr, requireLength, requireSecretKey } from './schnorr.js';
import { KEYPAIR_BYTES, loadNativeSecp256k1, type NativeSecp256k1 } from './secp256k1-native.js';

export type CryptoBackendName = 'native' | 'wasm';
export type CryptoBackendChoice = 'auto' | CryptoBackendName;
export const CRYPTO_BACKEND_CHOICES: readonly CryptoBackendChoice[] = ['auto', 'native', 'wasm'];

export interface CryptoBackend {
  readonly name: CryptoBackendName;
  /** For logs: the library behind it. */
  readonly description: string;
  /** What a key cache keeps for a valid 32-byte secret (a new buffer; the caller still owns sk). */
  keyMaterial(sk: Uint8Array): Uint8Array;
  /**
   * A BIP-340 signature by key material (or a secret) whose x-only public key must be pubX: any other key
   * is refused with InvalidKeyError. aux32 defaults to 32 fresh random bytes.
   */
  signWithKey(msg32: Uint8Array, key: Uint8Array, pubX: Uint8Array, aux32?: Uint8Array): Uint8Array;
  /** False for any invalid signature, public key or message; never throws on bad input. */
  verify(sig: Uint8Array, msg32: Uint8Array, pubX: Uint8Array): boolean;
  /** The x-only public key of key material or a secret. */
  getPublicKey(key: Uint8Array): Uint8Array;
  /** x of d·P, P the even-y point with x = peerX. InvalidKeyError for a bad key or a peer not on the curve. */
  ecdhX(key: Uint8Array, peerX: Uint8Array): Uint8Array;
  isXonlyPoint(pubX: Uint8Array): boolean;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] as number) ^ (b[i] as number);
  return diff === 0;
}

function createWasmBackend(): CryptoBackend {
  // One per thread: a worker thread signs for the same users again and again.
  const signer = new KnownKeySigner();
  const secretOf = (key: Uint8Array): Uint8Array => {
    if (key instanceof Uint8Array && key.length === KEYPAIR_BYTES)
      throw new InvalidKeyError('key material of the native backend');
    requireSecretKey(key);
    return key;
  };
  return {
    name: 'wasm',
    description: fastSchnorr.name,
    keyMaterial: (sk) => Uint8Array.from(secretOf(sk)),
    signWithKey: (msg32, key, pubX, aux32) => signer.sign(msg32, secretOf(key), pubX, aux32),
    verify: (sig, msg32, pubX) => fastSchnorr.verify(sig, msg32, pubX),
    getPublicKey: (key) => fastSchnorr.getPublicKey(secretOf(key)),
    ecdhX(key, peerX) {
      if (!(key instanceof Uint8Array) || key.length !== 32 || !ecc.isPrivate(key))
        throw new InvalidKeyError('secret key is out of range');
      const sk = key;
      if (!(peerX instanceof Uint8Array) || peerX.length !== 32 || !ecc.isXOnlyPoint(peerX))
        throw new InvalidKeyError('invalid peer pubkey');
      const evenYPoint = new Uint8Array(33);
      evenYPoint[0] = 0x02;
      evenYPoint.set(peerX, 1);
      const shared = ecc.pointMultiply(evenYPoint, sk, true);
      // Unreachable for a valid point and scalar (prime order group), kept so a library change cannot slip by.
      if (shared === null) throw new InvalidKeyError('invalid peer pubkey');
      return shared.slice(1, 33);
    },
    isXonlyPoint: (pubX) => pubX instanceof Uint8Array && pubX.length === 32 && ecc.isXOnlyPoint(pubX),
  };
}

function createNativeBackend(lib: NativeSecp256k1): CryptoBackend {
  const requireSecret = (sk: Uint8Array) => {
    if (!lib.isSecretKey(sk)) {
      requireLength(sk, 32, 'secret key');
      throw new RangeError('secret key is out of range');
    }
  };
  /** Runs fn with a keypair for key: key itself, or a temporary one (wiped after) for a bare secret. */
  const withKeypair = <T>(key: Uint8Array, fn: (keypair: Uint8Array) => T): T => {
    if (key instanceof Uint8Array && key.length === KEYPAIR_BYTES) return fn(key);
    requireSecret(key);
    const keypair = lib.keypairCreate(key)!;
    try {
      return fn(keypair);
    } finally {
      keypair.fill(0);
    }
  };
  const publicKeyOf = (keypair: Uint8Array) => {
    const pubX = lib.keypairXonly(keypair);
    if (!pubX) throw new InvalidKeyError('invalid key material');
    return pubX;
  };
  return {
    name: 'native',
    description: `libsecp256k1 (${lib.library}) through koffi`,
    keyMaterial(sk) {
      requireSecret(sk);
      return lib.keypairCreate(sk)!;
    },
    signWithKey(msg32, key, pubX, aux32 = randomBytes(32)) {
      requireLength(msg32, 32, 'message');
      requireLength(pubX, 32, 'public key');
      requireLength(aux32, 32, 'aux');
      return withKeypair(key, (keypair) => {
        if (!sameBytes(publicKeyOf(keypair), pubX))
          throw new InvalidKeyError('secret key does not match the signer pubkey');
        const sig = lib.sign(msg32, keypair, aux32);
        if (!sig) throw new InvalidKeyError('invalid key material');
        return sig;
      });
    },
    verify: (sig, msg32, pubX) => lib.verify(sig, msg32, pubX),
    getPublicKey: (key) => withKeypair(key, publicKeyOf),
    ecdhX(key, peerX) {
      if (!(peerX instanceof Uint8Array) || peerX.length !== 32) throw new InvalidKeyError('invalid peer pubkey');
      let sk = key;
      if (key instanceof Uint8Array && key.length === KEYPAIR_BYTES) {
        sk = new Uint8Array(32);
        if (!lib.keypairSecret(key, sk)) throw new InvalidKeyError('invalid key material');
      } else if (!lib.isSecretKey(key)) {
        throw new InvalidKeyError('secret key is out of range');
      }
      try {
        const x = lib.ecdhX(sk, peerX);
        if (!x) throw new InvalidKeyError('invalid peer pubkey');
        return x;
      } finally {
        if (sk !== key) sk.fill(0);
      }
    },
    isXonlyPoint: (pubX) => lib.isXonlyPoint(pubX),
  };
}

let wasm: CryptoBackend | undefined;
let native: NativeLoad | undefined;

/** The native backend, or why it could not be loaded. */
export interface NativeLoad {
  backend?: CryptoBackend;
  error?: string;
}

/** Loads a native backend from the given library names (default: the system's usual ones). */
export function loadNativeBackend(libraryNames?: readonly string[]): NativeLoad {
  try {
    return { backend: createNativeBackend(loadNativeSecp256k1(libraryNames)) };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

export function wasmBackend(): CryptoBackend {
  return (wasm ??= createWasmBackend());
}

/** The native backend of this thread, or undefined with the reason in nativeBackendError(). */
export function nativeBackend(): CryptoBackend | undefined {
  native ??= loadNativeBackend();
  return native.backend;
}

export function nativeBackendError(): string | undefined {
  nativeBackend();
  return native?.error;
}

export interface CryptoBackendSelection {
  backend: CryptoBackend;
  /** Set when `auto` fell back to WASM: why the native library could not be used. */
  fallbackReason?: string;
}

let active: CryptoBackend | undefined;

/**
 * Resolves a choice; `native` throws when the library cannot be loaded, `auto` falls back to WASM.
 * loadNative: where the native backend comes from (this thread's, by default).
 */
export function resolveCryptoBackend(
  choice: CryptoBackendChoice,
  loadNative: () => NativeLoad = () => (nativeBackend(), native!),
): CryptoBackendSelection {
  if (choice === 'wasm') return { backend: wasmBackend() };
  const load = loadNative();
  if (load.backend) return { backend: load.backend };
  if (choice === 'native') throw new Error(`CRYPTO_BACKEND=native: ${load.error}`);
  return { backend: wasmBackend(), fallbackReason: load.error };
}

/** Makes the choice the backend of this thread's signing, verification and ECDH. */
export function useCryptoBackend(choice: CryptoBackendChoice, loadNative?: () => NativeLoad): CryptoBackendSelection {
  const selection = resolveCryptoBackend(choice, loadNative);
  active = selection.backend;
  return selection;
}

/** The thread's backend: the one chosen with useCryptoBackend, else `auto`. */
export function cryptoBackend(): CryptoBackend {
  return (active ??= resolveCryptoBackend('auto').backend);
}
