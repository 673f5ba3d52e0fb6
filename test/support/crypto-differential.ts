// Differential cases for the crypto backends: the native libsecp256k1 (through koffi) against its WASM build
// (tiny-secp256k1) on every case, and against @noble/curves, an independent implementation, on every
// `nobleEvery`-th case (it is twenty times slower). Inputs are derived from a seed, so a failure can be
// replayed: sha256(seed | kind | case | part).
import { createHash } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import * as ecc from 'tiny-secp256k1';
import { schnorr, secp256k1 } from '@noble/curves/secp256k1.js';
import { nativeBackend, wasmBackend } from '../../shared/nostr/crypto-backend.js';
import { InvalidKeyError } from '../../shared/nostr/key-error.js';
import { bytesToHex } from '../../shared/nostr/hex.js';

export type DifferentialKind = 'sign' | 'verify' | 'ecdh';

export interface DifferentialJob {
  kind: DifferentialKind;
  seed: string;
  from: number;
  count: number;
  nobleEvery: number;
}

export interface DifferentialResult {
  cases: number;
  nobleCases: number;
  mismatches: string[];
}

const input = (seed: string, kind: string, i: number, part: number) =>
  new Uint8Array(createHash('sha256').update(`${seed}|${kind}|${i}|${part}`).digest());

function secretFor(seed: string, kind: string, i: number): Uint8Array {
  for (let part = 0; ; part += 16) {
    const sk = input(seed, kind, i, part);
    if (ecc.isPrivate(sk)) return sk;
  }
}

/** Throws InvalidKeyError → 'refused'; anything else is a bug worth seeing. */
function outcome(fn: () => Uint8Array | boolean): string {
  try {
    const v = fn();
    return typeof v === 'boolean' ? String(v) : bytesToHex(v);
  } catch (err) {
    if (err instanceof InvalidKeyError) return 'refused';
    throw err;
  }
}

export function runDifferential(job: DifferentialJob): DifferentialResult {
  const native = nativeBackend();
  if (!native) throw new Error('the native backend is not available');
  const wasm = wasmBackend();
  const mismatches: string[] = [];
  let nobleCases = 0;
  const differ = (i: number, what: string, values: string[]) => {
    if (values.some((v) => v !== values[0]) && mismatches.length < 10)
      mismatches.push(`${job.kind} case ${i} (seed ${job.seed}) ${what}: ${values.join(' / ')}`);
  };
  for (let i = job.from; i < job.from + job.count; i++) {
    const noble = i % job.nobleEvery === 0;
    if (noble) nobleCases++;
    const sk = secretFor(job.seed, job.kind, i);
    const msg = input(job.seed, job.kind, i, 1);
    if (job.kind === 'sign') {
      const aux = input(job.seed, job.kind, i, 2);
      const keypair = native.keyMaterial(sk);
      const pub = native.getPublicKey(keypair);
      const sig = native.signWithKey(msg, keypair, pub, aux);
      const values = [bytesToHex(sig), bytesToHex(ecc.signSchnorr(msg, sk, aux))];
      if (noble) values.push(bytesToHex(schnorr.sign(msg, sk, aux)));
      differ(i, 'signature', values);
      if (noble)
        differ(i, 'public key', [
          bytesToHex(pub),
          bytesToHex(ecc.xOnlyPointFromScalar(sk)),
          bytesToHex(schnorr.getPublicKey(sk)),
        ]);
      differ(i, 'own signature verifies', [String(native.verify(sig, msg, pub)), 'true']);
    } else if (job.kind === 'verify') {
      // A valid signature, then one of: as is, a bit flipped in the signature, in the message, another key.
      const keypair = native.keyMaterial(sk);
      const pub = native.getPublicKey(keypair);
      const sig = native.signWithKey(msg, keypair, pub, input(job.seed, job.kind, i, 2));
      const variant = i % 4;
      const flip = (b: Uint8Array, bit: number) => {
        const c = Uint8Array.from(b);
        c[(bit >> 3) % c.length]! ^= 1 << (bit & 7);
        return c;
      };
      const bit = input(job.seed, job.kind, i, 3)[0]! * 2 + (i & 1);
      const s = variant === 1 ? flip(sig, bit) : sig;
      const m = variant === 2 ? flip(msg, bit) : msg;
      const p = variant === 3 ? input(job.seed, job.kind, i, 4) : pub;
      const values = [String(native.verify(s, m, p)), String(wasm.verify(s, m, p))];
      if (noble) values.push(String(schnorr.verify(s, m, p)));
      differ(i, `verify variant ${variant}`, values);
      if (variant === 0) differ(i, 'valid signature accepted', [values[0]!, 'true']);
    } else {
      // A random x: about half are not on the curve and must be refused by every implementation.
      const peerX = input(job.seed, job.kind, i, 1);
      // From a keypair (as the farm does) or from the bare secret, on alternate cases.
      const key = i % 2 === 0 ? native.keyMaterial(sk) : sk;
      const values = [outcome(() => native.ecdhX(key, peerX)), outcome(() => wasm.ecdhX(sk, peerX))];
      if (noble) {
        values.push(
          outcome(() => {
            let point: Uint8Array;
            try {
              point = secp256k1.getSharedSecret(sk, Uint8Array.from([2, ...peerX]));
            } catch {
              throw new InvalidKeyError('not on the curve');
            }
            return point.subarray(1, 33);
          }),
        );
      }
      differ(i, 'shared x', values);
    }
  }
  return { cases: job.count, nobleCases, mismatches };
}

if (parentPort && (workerData as { differential?: DifferentialJob } | undefined)?.differential) {
  parentPort.postMessage(runDifferential((workerData as { differential: DifferentialJob }).differential));
}
