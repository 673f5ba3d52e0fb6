// The crypto work a worker hands to its piscina pool, batched: one task carries the ops of one job.
// Secrets travel only between the worker's threads (postMessage), never to Redis or a log.
import type { NostrEvent, UnsignedEvent } from '../../shared/nostr/types.js';

export type CryptoOp =
  | { op: 'sign_event'; sk: Uint8Array; pubkey: string; event: UnsignedEvent }
  /** convKey: the cached NIP-44 conversation key (nip44_*) or ECDH shared x (nip04_*), if known. */
  | { op: 'nip44_encrypt' | 'nip04_encrypt'; sk: Uint8Array; peer: string; plaintext: string; convKey?: Uint8Array }
  | { op: 'nip44_decrypt' | 'nip04_decrypt'; sk: Uint8Array; peer: string; ciphertext: string; convKey?: Uint8Array };

export type CryptoResult =
  /** convKey is returned when the op had to compute it, so the caller can cache it. */
  | { ok: true; value: NostrEvent | string; convKey?: Uint8Array }
  /** A clear message for the client ("invalid ciphertext", "invalid peer pubkey"); never key material. */
  | { ok: false; error: string };

export interface CryptoRunner {
  run(ops: CryptoOp[]): Promise<CryptoResult[]>;
  close(): Promise<void>;
}
