// The curve operations a crypto op needs, behind one interface so the same op code runs wherever its
// curve work does: here, on this thread's backend (a pool thread, or the event loop), or on a crypto lane
// thread (lane.ts) that answers a whole turn's curve work in one message.
import { cryptoBackend } from '../../shared/nostr/crypto-backend.js';
import { fillRandom } from '../../shared/random-pool.js';

export interface Curve {
  /**
   * A BIP-340 signature of msg32 by key (key material or a bare secret) whose x-only public key must be
   * pubX. Rejects with InvalidKeyError for another key or bad key material; with `check`, the signature is
   * verified first and a failed check rejects (CurveCheckError): an unchecked signature is never returned.
   */
  sign(msg32: Uint8Array, key: Uint8Array, pubX: Uint8Array, check: boolean): Promise<Uint8Array>;
  /** False for any invalid signature, public key or message. */
  verify(sig: Uint8Array, msg32: Uint8Array, pubX: Uint8Array): Promise<boolean>;
  /** The ECDH shared x with the even-y point of peerX; InvalidKeyError for a bad key or peer. */
  ecdhX(key: Uint8Array, peerX: Uint8Array): Promise<Uint8Array>;
  /** Sends the work asked for so far now rather than at the end of the turn (a curve that batches). */
  flush?(): void;
}

/** A signature that did not verify right after it was made: a fault in the signer, never shown to a client as such. */
export class CurveCheckError extends Error {
  override readonly name = 'CurveCheckError';
  constructor() {
    super('signature check failed');
  }
}

/** BIP-340 aux randomness of the signature being made (signing is synchronous: one buffer per thread). */
const auxRandom = new Uint8Array(32);

/** Signs and, with check, verifies on this thread's backend; what both the local curve and a lane thread run. */
export function signChecked(msg32: Uint8Array, key: Uint8Array, pubX: Uint8Array, check: boolean): Uint8Array {
  const backend = cryptoBackend();
  const aux = fillRandom(auxRandom);
  try {
    const sig = backend.signWithKey(msg32, key, pubX, aux);
    if (check && !backend.verify(sig, msg32, pubX)) {
      sig.fill(0);
      throw new CurveCheckError();
    }
    return sig;
  } finally {
    aux.fill(0);
  }
}

/** The curve on this thread's backend, answered at once. */
export const localCurve: Curve = {
  async sign(msg32, key, pubX, check) {
    return signChecked(msg32, key, pubX, check);
  },
  async verify(sig, msg32, pubX) {
    return cryptoBackend().verify(sig, msg32, pubX);
  },
  async ecdhX(key, peerX) {
    return cryptoBackend().ecdhX(key, peerX);
  },
};
