// The crypto work a worker (or relay-ingest) hands to its piscina pool, batched: one task carries the ops of one
// event-loop turn.
// Secrets travel only between the worker's threads (postMessage), never to Redis or a log.
import type { NostrEvent, UnsignedEvent } from '../../shared/nostr/types.js';

/** One operation with one key. */
export type KeyOp =
  | { op: 'sign_event'; sk: Uint8Array; pubkey: string; event: UnsignedEvent }
  /** convKey: the cached NIP-44 conversation key (nip44_*) or ECDH shared x (nip04_*), if known. */
  | { op: 'nip44_encrypt' | 'nip04_encrypt'; sk: Uint8Array; peer: string; plaintext: string; convKey?: Uint8Array }
  | { op: 'nip44_decrypt' | 'nip04_decrypt'; sk: Uint8Array; peer: string; ciphertext: string; convKey?: Uint8Array };

/**
 * A whole NIP-46 answer in one step: run the user's operation (if any), turn its outcome (or the given
 * answer) into the response `{id, result, error?}`, encrypt that to the client in the request's scheme
 * and sign the kind-24133 event with the bunker key. One pool task instead of three rounds.
 */
export interface Nip46RespondOp {
  op: 'nip46_respond';
  id: string;
  userOp?: KeyOp;
  answer?: { result: string; error?: string };
  seal: {
    sk: Uint8Array;
    pubkey: string;
    peer: string;
    scheme: 'nip44' | 'nip04';
    convKey?: Uint8Array;
    createdAt: number;
  };
}

/** Checks a received event's id and signature (relay-ingest): ok when both hold. No key involved. */
export interface VerifyEventOp {
  op: 'verify_event';
  event: NostrEvent;
}

export type CryptoOp = KeyOp | Nip46RespondOp | VerifyEventOp;

export type CryptoResult =
  /**
   * convKey is returned when the op had to compute it, so the caller can cache it. `inner` is the user
   * operation's own result inside a nip46_respond (its convKey, if any, is the user key's).
   */
  | { ok: true; value: NostrEvent | string; convKey?: Uint8Array; inner?: CryptoResult }
  /** A clear message for the client ("invalid ciphertext", "invalid peer pubkey"); never key material. */
  | { ok: false; error: string };

export interface CryptoRunner {
  run(ops: CryptoOp[]): Promise<CryptoResult[]>;
  close(): Promise<void>;
}
