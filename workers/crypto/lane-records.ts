// The crypto lane's wire format: one ArrayBuffer per batch, transferred (not copied) to the lane thread
// and back. An 8-byte header holds the record count; then fixed-size records, one per curve operation:
//
//   0 op | 1 status (written by the thread) | 2 key length (32: a secret, 96: a libsecp256k1 keypair)
//   8 key (96) | 104 message (32; ECDH: the shared x comes back here) | 136 public key or peer x (32)
//   168 signature (64: in for verify, out for sign)
//
// The thread wipes each record's key bytes once it is done with them; the caller wipes the whole buffer
// (shared x included) once it has read the answers.
import { cryptoBackend } from '../../shared/nostr/crypto-backend.js';
import { InvalidKeyError } from '../../shared/nostr/key-error.js';
import { CurveCheckError, signChecked } from './curve.js';

export const HEADER_BYTES = 8;
export const RECORD_BYTES = 232;
export const OFF_OP = 0;
export const OFF_STATUS = 1;
export const OFF_KEY_LENGTH = 2;
export const OFF_KEY = 8;
export const OFF_MSG = 104;
export const OFF_PUB = 136;
export const OFF_SIG = 168;
export const KEY_MAX = 96;

export const LaneOp = { Sign: 1, SignChecked: 2, Verify: 3, Ecdh: 4 } as const;

export const LaneStatus = {
  Ok: 0,
  /** verify: the signature does not hold. */
  Invalid: 1,
  /** sign: the signature just made did not verify; no signature is written. */
  CheckFailed: 2,
  /** Anything else (a bad record, a library fault): a generic error for the client. */
  Failed: 3,
  /** InvalidKeyError, its message the entry KEY_ERRORS[status - KeyError]. */
  KeyError: 16,
} as const;

/** The InvalidKeyError messages a lane reports by number (they are written for clients; no key material). */
export const KEY_ERRORS = [
  'invalid key',
  'secret key does not match the signer pubkey',
  'invalid key material',
  'invalid peer pubkey',
  'secret key is out of range',
  'key material of the native backend',
] as const;

export const batchBytes = (records: number) => HEADER_BYTES + records * RECORD_BYTES;

export function recordCount(bytes: Uint8Array): number {
  return new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES).getUint32(0, true);
}

export function setRecordCount(bytes: Uint8Array, count: number): void {
  new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES).setUint32(0, count, true);
}

/** Runs every record of a batch on this thread's crypto backend, writing statuses and outputs in place. */
export function runLaneRecords(bytes: Uint8Array): void {
  const count = Math.min(recordCount(bytes), Math.floor((bytes.length - HEADER_BYTES) / RECORD_BYTES));
  for (let i = 0; i < count; i++) {
    const at = HEADER_BYTES + i * RECORD_BYTES;
    const record = bytes.subarray(at, at + RECORD_BYTES);
    try {
      record[OFF_STATUS] = runRecord(record);
    } catch (err) {
      record[OFF_STATUS] = statusOf(err);
      record.fill(0, OFF_SIG, OFF_SIG + 64);
    } finally {
      record.fill(0, OFF_KEY, OFF_KEY + KEY_MAX);
    }
  }
}

function runRecord(record: Uint8Array): number {
  const op = record[OFF_OP];
  const msg = record.subarray(OFF_MSG, OFF_MSG + 32);
  const pub = record.subarray(OFF_PUB, OFF_PUB + 32);
  const sig = record.subarray(OFF_SIG, OFF_SIG + 64);
  if (op === LaneOp.Verify) return cryptoBackend().verify(sig, msg, pub) ? LaneStatus.Ok : LaneStatus.Invalid;
  const keyLength = record[OFF_KEY_LENGTH]!;
  if (keyLength !== 32 && keyLength !== KEY_MAX) return LaneStatus.Failed;
  const key = record.subarray(OFF_KEY, OFF_KEY + keyLength);
  if (op === LaneOp.Sign || op === LaneOp.SignChecked) {
    const made = signChecked(msg, key, pub, op === LaneOp.SignChecked);
    sig.set(made);
    made.fill(0);
    return LaneStatus.Ok;
  }
  if (op === LaneOp.Ecdh) {
    const x = cryptoBackend().ecdhX(key, pub);
    msg.set(x);
    x.fill(0);
    return LaneStatus.Ok;
  }
  return LaneStatus.Failed;
}

function statusOf(err: unknown): number {
  if (err instanceof CurveCheckError) return LaneStatus.CheckFailed;
  if (err instanceof InvalidKeyError) {
    const known = KEY_ERRORS.indexOf(err.message as (typeof KEY_ERRORS)[number]);
    return LaneStatus.KeyError + Math.max(0, known);
  }
  return LaneStatus.Failed;
}
