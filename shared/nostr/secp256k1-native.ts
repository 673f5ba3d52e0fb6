// The system's libsecp256k1 (Debian's libsecp256k1-1: schnorrsig, extrakeys and ecdh modules) through
// koffi. About five times less CPU than the same library compiled to WASM (docs/BENCHMARKS.md).
//
// Every buffer handed to C is length-checked here first: the library reads and writes fixed sizes.
// Its "illegal argument" callback, which by default aborts the process, is replaced by one that records
// the fault, so a bad argument (a wiped keypair, say) makes the call fail instead of killing the farm.
// One context per thread (this module is loaded once per isolate), randomized against side channels.
// koffi hands C a pointer to a typed array's own memory, const parameters included (no copy: a test holds it
// to that), so a secret exists only in the buffers this code and its callers wipe.
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import type * as Koffi from 'koffi';

/** The opaque secp256k1_keypair: the secret and its public point, in the library's own layout. */
export const KEYPAIR_BYTES = 96;
/** secp256k1_pubkey and secp256k1_xonly_pubkey: opaque 64-byte structs. */
const PUBKEY_STRUCT_BYTES = 64;
const SECP256K1_CONTEXT_NONE = 1;
/** Parsed public keys kept for verification (about 250 bytes each, so under 1 MB); when full it starts over. */
const PARSED_KEYS_MAX = 4096;
const LIBRARY_NAMES = ['libsecp256k1.so.1', 'libsecp256k1.so', 'libsecp256k1.1.dylib', 'libsecp256k1.dylib'];

export interface NativeSecp256k1 {
  readonly library: string;
  /** True for a 32-byte secret in [1, n-1]. */
  isSecretKey(sk: Uint8Array): boolean;
  /** A fresh 96-byte keypair for a valid secret, or undefined. */
  keypairCreate(sk: Uint8Array): Uint8Array | undefined;
  /** The keypair's 32-byte x-only public key, or undefined for a bad (e.g. wiped) keypair. */
  keypairXonly(keypair: Uint8Array): Uint8Array | undefined;
  /** Writes the keypair's secret into out32; false for a bad keypair. */
  keypairSecret(keypair: Uint8Array, out32: Uint8Array): boolean;
  /** BIP-340 signature, or undefined for a bad keypair. */
  sign(msg32: Uint8Array, keypair: Uint8Array, aux32: Uint8Array): Uint8Array | undefined;
  verify(sig64: Uint8Array, msg32: Uint8Array, pubX: Uint8Array): boolean;
  /** True when the 32 bytes are the x coordinate of a curve point. */
  isXonlyPoint(pubX: Uint8Array): boolean;
  /** x of sk·P where P is the even-y point with x = peerX (constant time in sk), or undefined. */
  ecdhX(sk: Uint8Array, peerX: Uint8Array): Uint8Array | undefined;
}

function fail(what: string): never {
  throw new TypeError(`${what}: wrong length`);
}

function check(bytes: Uint8Array, length: number, what: string): void {
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) fail(what);
}

/** Loads the library; throws an Error saying why when it (or koffi) is not there. */
export function loadNativeSecp256k1(libraryNames: readonly string[] = LIBRARY_NAMES): NativeSecp256k1 {
  const require = createRequire(import.meta.url);
  let koffi: typeof Koffi;
  try {
    koffi = require('koffi') as typeof Koffi;
  } catch (err) {
    throw new Error(`koffi is not installed (${(err as Error).message.split('\n')[0]})`);
  }
  let lib: Koffi.IKoffiLib | undefined;
  let library = '';
  for (const name of libraryNames) {
    try {
      lib = koffi.load(name);
      library = name;
      break;
    } catch {
      // next name
    }
  }
  if (!lib)
    throw new Error(`libsecp256k1 not found (install the libsecp256k1-1 package; tried ${libraryNames.join(', ')})`);

  const f = (proto: string) => lib!.func(proto);
  const contextCreate = f('void *secp256k1_context_create(unsigned int flags)');
  const contextRandomize = f('int secp256k1_context_randomize(void *ctx, const uint8_t *seed32)');
  const IllegalCallback = koffi.proto('void keyfarm_secp256k1_illegal(const char *message, void *data)');
  const setIllegalCallback = f(
    'void secp256k1_context_set_illegal_callback(void *ctx, keyfarm_secp256k1_illegal *fun, void *data)',
  );
  const seckeyVerify = f('int secp256k1_ec_seckey_verify(void *ctx, const uint8_t *seckey)');
  const keypairCreate = f('int secp256k1_keypair_create(void *ctx, uint8_t *keypair, const uint8_t *seckey)');
  const keypairSec = f('int secp256k1_keypair_sec(void *ctx, uint8_t *seckey, const uint8_t *keypair)');
  const keypairXonlyPub = f(
    'int secp256k1_keypair_xonly_pub(void *ctx, uint8_t *pubkey, int *pk_parity, const uint8_t *keypair)',
  );
  const xonlyParse = f('int secp256k1_xonly_pubkey_parse(void *ctx, uint8_t *pubkey, const uint8_t *input32)');
  const xonlySerialize = f('int secp256k1_xonly_pubkey_serialize(void *ctx, uint8_t *output32, const uint8_t *pubkey)');
  const pubkeyParse = f(
    'int secp256k1_ec_pubkey_parse(void *ctx, uint8_t *pubkey, const uint8_t *input, size_t inputlen)',
  );
  const schnorrSign32 = f(
    'int secp256k1_schnorrsig_sign32(void *ctx, uint8_t *sig64, const uint8_t *msg32, const uint8_t *keypair, const uint8_t *aux_rand32)',
  );
  const schnorrVerify = f(
    'int secp256k1_schnorrsig_verify(void *ctx, const uint8_t *sig64, const uint8_t *msg, size_t msglen, const uint8_t *pubkey)',
  );
  const EcdhHash = koffi.proto(
    'int keyfarm_ecdh_copy_x(uint8_t *output, const uint8_t *x32, const uint8_t *y32, void *data)',
  );
  const ecdh = f(
    'int secp256k1_ecdh(void *ctx, uint8_t *output, const uint8_t *pubkey, const uint8_t *seckey, keyfarm_ecdh_copy_x *hashfp, void *data)',
  );

  const ctx: unknown = contextCreate(SECP256K1_CONTEXT_NONE);
  if (!ctx) throw new Error('libsecp256k1: context creation failed');
  let illegal = false;
  // Kept referenced for the life of the thread: C holds the pointer.
  const onIllegal = koffi.register(() => {
    illegal = true;
  }, koffi.pointer(IllegalCallback));
  setIllegalCallback(ctx, onIllegal, null);
  const seed = randomBytes(32);
  const randomized = contextRandomize(ctx, seed) === 1;
  seed.fill(0);
  if (!randomized) throw new Error('libsecp256k1: context randomization failed');

  // NIP-04 and NIP-44 need the bare x coordinate; libsecp256k1's default hashes it. The callback copies x
  // from C's memory straight into the output, so the shared secret never becomes a JS array.
  let ecdhOut: Uint8Array | undefined;
  const copyX = koffi.register((_output: unknown, x32: unknown) => {
    ecdhOut!.set(new Uint8Array(koffi.view(x32, 32)));
    return 1;
  }, koffi.pointer(EcdhHash));

  /** Runs a call; a 0 return or an illegal-argument report is a failure. */
  const ok = (ret: number): boolean => {
    const fine = ret === 1 && !illegal;
    illegal = false;
    return fine;
  };
  const xonly = new Uint8Array(PUBKEY_STRUCT_BYTES);
  const pubkey = new Uint8Array(PUBKEY_STRUCT_BYTES);
  // Parsed x-only keys of recent verifications: parsing takes a square root (about 7 µs with the call, an
  // eighth of a verification), and the farm verifies every signature it makes, with a few keys at a time.
  // A parse is a pure function of the 32 bytes, which are the map's key; a key that fails is not kept.
  const parsed = new Map<string, Uint8Array>();
  const parsedXonly = (pubX: Uint8Array): Uint8Array | undefined => {
    const id = Buffer.from(pubX.buffer, pubX.byteOffset, 32).toString('latin1');
    let struct = parsed.get(id);
    if (struct === undefined) {
      struct = new Uint8Array(PUBKEY_STRUCT_BYTES);
      if (!ok(xonlyParse(ctx, struct, pubX))) return undefined;
      if (parsed.size >= PARSED_KEYS_MAX) parsed.clear();
      parsed.set(id, struct);
    }
    return struct;
  };
  const compressed = new Uint8Array(33);

  return {
    library,
    isSecretKey(sk) {
      return sk instanceof Uint8Array && sk.length === 32 && ok(seckeyVerify(ctx, sk));
    },
    keypairCreate(sk) {
      check(sk, 32, 'secret key');
      const keypair = new Uint8Array(KEYPAIR_BYTES);
      return ok(keypairCreate(ctx, keypair, sk)) ? keypair : undefined;
    },
    keypairXonly(keypair) {
      check(keypair, KEYPAIR_BYTES, 'keypair');
      if (!ok(keypairXonlyPub(ctx, xonly, null, keypair))) return undefined;
      const out = new Uint8Array(32);
      return ok(xonlySerialize(ctx, out, xonly)) ? out : undefined;
    },
    keypairSecret(keypair, out32) {
      check(keypair, KEYPAIR_BYTES, 'keypair');
      check(out32, 32, 'output');
      return ok(keypairSec(ctx, out32, keypair)) && !out32.every((b) => b === 0);
    },
    sign(msg32, keypair, aux32) {
      check(msg32, 32, 'message');
      check(keypair, KEYPAIR_BYTES, 'keypair');
      check(aux32, 32, 'aux');
      const sig = new Uint8Array(64);
      return ok(schnorrSign32(ctx, sig, msg32, keypair, aux32)) ? sig : undefined;
    },
    verify(sig64, msg32, pubX) {
      if (!(sig64 instanceof Uint8Array) || sig64.length !== 64) return false;
      if (!(msg32 instanceof Uint8Array) || msg32.length !== 32) return false;
      if (!(pubX instanceof Uint8Array) || pubX.length !== 32) return false;
      const key = parsedXonly(pubX);
      return key !== undefined && ok(schnorrVerify(ctx, sig64, msg32, 32, key));
    },
    isXonlyPoint(pubX) {
      return pubX instanceof Uint8Array && pubX.length === 32 && ok(xonlyParse(ctx, xonly, pubX));
    },
    ecdhX(sk, peerX) {
      check(sk, 32, 'secret key');
      check(peerX, 32, 'peer public key');
      compressed[0] = 0x02;
      compressed.set(peerX, 1);
      if (!ok(pubkeyParse(ctx, pubkey, compressed, 33))) return undefined;
      const out = new Uint8Array(32);
      ecdhOut = out;
      try {
        return ok(ecdh(ctx, out, pubkey, sk, copyX, null)) ? out : undefined;
      } finally {
        ecdhOut = undefined;
      }
    },
  };
}
