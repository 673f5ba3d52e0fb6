// What travels through the shard queues. No secret ever goes in here: a job names the key it needs
// (keyId) and the worker that owns the shard loads and decrypts it.
//
// No private content goes in here in the clear either. An RPC job's calls (plaintexts, ciphertexts,
// peers, events to sign) and its results (signed events, ciphertexts, decrypted text) are sealed, once
// per job each way, with the farm payload key (payload-seal.ts, rpc-sealing.ts): AES-256-GCM, the AAD
// naming the job, the sealed list naming each item. So Redis (job hashes, return values, the events
// stream, reply pub/sub) and Bull Board never hold them readable; what stays readable is metadata (ids,
// trace ids, key ids, methods).
// The payload key lives in PostgreSQL (table payload_keys) sealed under the KEK like a user's key, and in
// the memory of each process that loaded it at start (payload-key.ts). NIP-46 jobs need no sealing: they
// carry the client's request event and return the response event, both encrypted end to end.
import type { NostrEvent, UnsignedEvent } from '../nostr/types.js';

export type RpcMethod =
  | 'get_public_key'
  | 'sign_event'
  | 'nip44_encrypt'
  | 'nip44_decrypt'
  | 'nip04_encrypt'
  | 'nip04_decrypt'
  | 'ping';

/** Parameters after validation at the edge. */
export type RpcCall =
  | { method: 'get_public_key' | 'ping' }
  | { method: 'sign_event'; event: UnsignedEvent }
  | { method: 'nip44_encrypt' | 'nip04_encrypt'; peer: string; plaintext: string }
  | { method: 'nip44_decrypt' | 'nip04_decrypt'; peer: string; ciphertext: string };

/** One request, as the api hands it to the RpcClient (in process memory only). */
export interface RpcItem {
  /** Unique per request; the api matches the reply to its waiting HTTP request with it. */
  id: string;
  traceId: string;
  authorizationId: string;
  /** Row id of the key to use (the user's key). */
  keyId: string;
  /** The pubkey of that key, for the worker to check what it decrypted. */
  pubkey: string;
  call: RpcCall;
}

/** One request inside a job: its metadata; its call is in the job's sealed `calls`. */
export interface RpcJobItem extends Omit<RpcItem, 'call'> {
  method: RpcMethod;
}

/** A micro-batch of HTTP RPC requests for one shard from one api process. */
export interface RpcJobData {
  type: 'rpc';
  /** Instance id of the api process waiting for the answers. */
  replyTo: string;
  /** Where the requests came in (activity and metrics); 'http' when absent. */
  door?: 'http' | 'nip46';
  items: RpcJobItem[];
  /** Every item's `{id, call}` in item order, sealed for this job (rpc-sealing.ts). */
  calls: string;
}

/** One NIP-46 request event as relay-ingest received it (content still encrypted: no secret in here). */
export interface Nip46Item {
  /** The request event's id; the reply's result for it carries the same id. */
  id: string;
  traceId: string;
  /** The bunker pubkey the request is addressed to (its `p` tag). */
  bunkerPubkey: string;
  event: NostrEvent;
  /** Sent again once its user decided: the approval the worker uses (once) instead of asking. */
  approvalId?: string;
}

/**
 * A micro-batch of NIP-46 requests for one shard from one relay-ingest process. The reply's results are
 * `{id, ok: true, result: <signed kind-24133 response event>}`, or `ok: false` for a request that gets
 * no response (content that cannot be decrypted); relay-ingest publishes the events.
 */
export interface Nip46JobData {
  type: 'nip46';
  /** Instance id of the relay-ingest process that publishes the responses. */
  replyTo: string;
  items: Nip46Item[];
}

/** Backpressure counts a job as `items.length` requests (a job without items counts as one). */
export type JobData = RpcJobData | Nip46JobData;

/**
 * What the ingress knows of a request it answers itself (never set by a worker):
 * - 'not_queued': no job carries it and none ever will (refused before the add): safe to retry;
 * - 'unknown': its job was added, or its add was sent, and no answer came: it may have run, or still run.
 */
export type IngressOutcome = 'not_queued' | 'unknown';

export type ItemResult =
  /** `method`: a NIP-46 request's method (a NIP46_METHODS name or "other"), for relay-ingest's latency metric. */
  | { id: string; ok: true; result: unknown; method?: string }
  | { id: string; ok: false; status: number; error: string; outcome?: IngressOutcome; retryAfterMs?: number };

/**
 * What a worker publishes on the reply channel, and stores as the job's return value: for a NIP-46 job,
 * and for a job that failed for good (every item an error, which carries no content).
 */
export interface ReplyMessage {
  jobId: string;
  results: ItemResult[];
}

/** The reply to an RPC job that ran: its ItemResult[] sealed for the job (rpc-sealing.ts). */
export interface SealedReplyMessage {
  jobId: string;
  sealedResults: string;
}
