// The crypto a job needs, run synchronously on the thread that calls it (a piscina worker in production).
// Each op succeeds or fails on its own: one bad ciphertext must not fail the other requests of a batch.
import type { CryptoOp, CryptoResult, KeyOp, Nip46RespondOp } from './types.js';
import { EventValidationError, signEventBytes, validateUnsignedEvent, verifyEvent } from '../../shared/nostr/event.js';
import { cryptoBackend } from '../../shared/nostr/crypto-backend.js';
import { InvalidKeyError, isValidPubkeyHex } from '../../shared/nostr/keys.js';
import { isLowerHex } from '../../shared/nostr/hex.js';
import { getConversationKey, Nip44Error, nip44Decrypt, nip44Encrypt } from '../../shared/nostr/nip44.js';
import { getSharedX, Nip04Error, nip04Decrypt, nip04Encrypt } from '../../shared/nostr/nip04.js';
import { fillRandom } from '../../shared/random-pool.js';

/** Errors whose messages are written for clients and never carry key material. */
const CLIENT_FACING_ERRORS = [EventValidationError, InvalidKeyError, Nip44Error, Nip04Error];

class OpError extends Error {}

export function runCryptoOps(ops: CryptoOp[]): CryptoResult[] {
  return ops.map(runOne);
}

function runOne(op: CryptoOp): CryptoResult {
  try {
    return runOp(op);
  } catch (err) {
    if (err instanceof OpError || CLIENT_FACING_ERRORS.some((type) => err instanceof type)) {
      return { ok: false, error: (err as Error).message };
    }
    // Anything else came from a library or a bug; its text is not meant for clients.
    return { ok: false, error: 'crypto operation failed' };
  }
}

function runOp(op: CryptoOp): CryptoResult {
  switch (op.op) {
    case 'sign_event':
      return { ok: true, value: signEvent(op.sk, op.pubkey, op.event, true) };
    case 'nip44_encrypt': {
      const { key, computed } = conversationKey(op.convKey, op.sk, op.peer, getConversationKey);
      return withKey(nip44Encrypt(requireString(op.plaintext, 'plaintext'), key), key, computed);
    }
    case 'nip44_decrypt': {
      const { key, computed } = conversationKey(op.convKey, op.sk, op.peer, getConversationKey);
      return withKey(nip44Decrypt(requireString(op.ciphertext, 'ciphertext'), key), key, computed);
    }
    case 'nip04_encrypt': {
      const { key, computed } = conversationKey(op.convKey, op.sk, op.peer, getSharedX);
      return withKey(nip04Encrypt(key, requireString(op.plaintext, 'plaintext')), key, computed);
    }
    case 'nip04_decrypt': {
      const { key, computed } = conversationKey(op.convKey, op.sk, op.peer, getSharedX);
      return withKey(nip04Decrypt(key, requireString(op.ciphertext, 'ciphertext')), key, computed);
    }
    case 'nip46_respond':
      return respond(op);
    case 'verify_event':
      return verifyEvent(op.event) ? { ok: true, value: op.event.id } : { ok: false, error: 'invalid id or signature' };
    default:
      throw new OpError('unknown crypto op');
  }
}

const NIP46_KIND = 24133;
/** What a NIP-46 request may ask of the user's key inside a nip46_respond. */
const USER_OPS = new Set<CryptoOp['op']>([
  'sign_event',
  'nip44_encrypt',
  'nip44_decrypt',
  'nip04_encrypt',
  'nip04_decrypt',
]);

function respond(op: Nip46RespondOp): CryptoResult {
  let inner: CryptoResult | undefined;
  let response: { id: string; result: string; error?: string };
  if (op.userOp !== undefined) {
    if (!USER_OPS.has((op.userOp as CryptoOp).op)) throw new OpError('unknown crypto op');
    inner = runOne(op.userOp as KeyOp);
    response = inner.ok
      ? { id: op.id, result: typeof inner.value === 'string' ? inner.value : JSON.stringify(inner.value) }
      : { id: op.id, result: '', error: inner.error };
  } else {
    response = {
      id: op.id,
      result: op.answer?.result ?? '',
      ...(op.answer?.error !== undefined ? { error: op.answer.error } : {}),
    };
  }
  const { seal } = op;
  const plaintext = JSON.stringify(response);
  let content: string;
  let conv: { key: Uint8Array; computed: boolean };
  if (seal.scheme === 'nip04') {
    conv = conversationKey(seal.convKey, seal.sk, seal.peer, getSharedX);
    content = nip04Encrypt(conv.key, plaintext);
  } else {
    conv = conversationKey(seal.convKey, seal.sk, seal.peer, getConversationKey);
    content = nip44Encrypt(plaintext, conv.key);
  }
  const event = signEvent(
    seal.sk,
    seal.pubkey,
    { kind: NIP46_KIND, content, tags: [['p', seal.peer]], created_at: seal.createdAt },
    false,
  );
  return { ok: true, value: event, ...(conv.computed ? { convKey: conv.key } : {}), ...(inner ? { inner } : {}) };
}

/** BIP-340 aux randomness of the signature being made (signing is synchronous: one buffer per thread). */
const auxRandom = new Uint8Array(32);

/**
 * Signs; `check` verifies the signature before it leaves (BIP-340's last signing step).
 * Every signature returned to an app is checked. A NIP-46 response's own signature (the bunker key's, on
 * the kind-24133 envelope) is not: every relay verifies it on receipt and refuses it if invalid, the app's
 * client checks it again, and it comes from the same signer as the app's signatures checked here, so a
 * fault in that signer shows there. Skipping it saves one verification, about 0.4 ms, per NIP-46 round trip.
 */
function signEvent(sk: Uint8Array, pubkey: string, unsigned: unknown, check: boolean) {
  const aux = fillRandom(auxRandom);
  try {
    // The check runs on the bytes the returned event's id, sig and pubkey are the hex of.
    const signed = signEventBytes(validateUnsignedEvent(unsigned), sk, pubkey, aux);
    if (check && !cryptoBackend().verify(signed.sig, signed.id, signed.pubkey)) {
      throw new OpError('signature check failed');
    }
    return signed.event;
  } finally {
    aux.fill(0);
  }
}

function conversationKey(
  cached: Uint8Array | undefined,
  sk: Uint8Array,
  peer: string,
  derive: (sk: Uint8Array, peer: string) => Uint8Array,
): { key: Uint8Array; computed: boolean } {
  // A cached key was derived from this peer after a full curve check; the format check is kept so a
  // malformed job is still refused clearly. Deriving a fresh key checks the point itself.
  if (cached !== undefined) {
    if (!isLowerHex(peer, 64)) throw new OpError('invalid peer pubkey');
    if (!(cached instanceof Uint8Array) || cached.length !== 32) throw new OpError('invalid cached conversation key');
    return { key: cached, computed: false };
  }
  if (!isValidPubkeyHex(peer)) throw new OpError('invalid peer pubkey');
  return { key: derive(sk, peer), computed: true };
}

function withKey(value: string, key: Uint8Array, computed: boolean): CryptoResult {
  return computed ? { ok: true, value, convKey: key } : { ok: true, value };
}

function requireString(value: unknown, what: string): string {
  if (typeof value !== 'string') throw new OpError(`${what} must be a string`);
  return value;
}
