// The crypto a job needs. The op logic runs on the calling thread; its curve work (sign, verify, ECDH) goes
// to `curve`: this thread's backend by default (a pool thread), or a crypto lane thread (lane.ts) when the
// event loop runs the ops. Each op succeeds or fails on its own: one bad ciphertext must not fail the
// other requests of a batch.
import type { CryptoOp, CryptoResult, KeyOp, Nip46RespondOp } from './types.js';
import {
  EventValidationError,
  eventToSign,
  signatureToCheck,
  validateUnsignedEvent,
  withSignature,
} from '../../shared/nostr/event.js';
import { InvalidKeyError } from '../../shared/nostr/key-error.js';
import { hexToBytes, isLowerHex } from '../../shared/nostr/hex.js';
import { conversationKeyOf, Nip44Error, nip44Decrypt, nip44Encrypt } from '../../shared/nostr/nip44.js';
import { Nip04Error, nip04Decrypt, nip04Encrypt } from '../../shared/nostr/nip04.js';
import type { NostrEvent } from '../../shared/nostr/types.js';
import { type Curve, CurveCheckError, localCurve } from './curve.js';

/** Errors whose messages are written for clients and never carry key material. */
const CLIENT_FACING_ERRORS = [EventValidationError, InvalidKeyError, Nip44Error, Nip04Error, CurveCheckError];

class OpError extends Error {}

export function runCryptoOps(ops: CryptoOp[], curve: Curve = localCurve): Promise<CryptoResult[]> {
  const results = Promise.all(ops.map((op) => runOne(op, curve)));
  // Every op has asked for its first curve operation by now: a job's ops go out as one batch, answered as
  // soon as the thread is through them, not behind the other jobs of the turn. A single op (a relay
  // request's signature check) waits for the turn's batch instead: a message per op costs more than it.
  if (ops.length > 1) curve.flush?.();
  return results;
}

async function runOne(op: CryptoOp, curve: Curve): Promise<CryptoResult> {
  try {
    return await runOp(op, curve);
  } catch (err) {
    if (err instanceof OpError || CLIENT_FACING_ERRORS.some((type) => err instanceof type)) {
      return { ok: false, error: (err as Error).message };
    }
    // Anything else came from a library, a lost lane thread or a bug; its text is not meant for clients.
    return { ok: false, error: 'crypto operation failed' };
  }
}

async function runOp(op: CryptoOp, curve: Curve): Promise<CryptoResult> {
  switch (op.op) {
    case 'sign_event':
      return { ok: true, value: await signEvent(op.sk, op.pubkey, op.event, true, curve) };
    case 'nip44_encrypt': {
      const plaintext = requireString(op.plaintext, 'plaintext');
      const { key, computed } = await conversationKey(op.convKey, op.sk, op.peer, 'nip44', curve);
      return withKey(nip44Encrypt(plaintext, key), key, computed);
    }
    case 'nip44_decrypt': {
      const ciphertext = requireString(op.ciphertext, 'ciphertext');
      const { key, computed } = await conversationKey(op.convKey, op.sk, op.peer, 'nip44', curve);
      return withKey(nip44Decrypt(ciphertext, key), key, computed);
    }
    case 'nip04_encrypt': {
      const plaintext = requireString(op.plaintext, 'plaintext');
      const { key, computed } = await conversationKey(op.convKey, op.sk, op.peer, 'nip04', curve);
      return withKey(nip04Encrypt(key, plaintext), key, computed);
    }
    case 'nip04_decrypt': {
      const ciphertext = requireString(op.ciphertext, 'ciphertext');
      const { key, computed } = await conversationKey(op.convKey, op.sk, op.peer, 'nip04', curve);
      return withKey(nip04Decrypt(key, ciphertext), key, computed);
    }
    case 'nip46_respond':
      return respond(op, curve);
    case 'verify_event': {
      const check = signatureToCheck(op.event);
      return check !== undefined && (await curve.verify(check.sig, check.id, check.pubkey))
        ? { ok: true, value: op.event.id }
        : { ok: false, error: 'invalid id or signature' };
    }
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

async function respond(op: Nip46RespondOp, curve: Curve): Promise<CryptoResult> {
  if (op.userOp !== undefined && !USER_OPS.has((op.userOp as CryptoOp).op)) throw new OpError('unknown crypto op');
  const { seal } = op;
  // The user's operation and the conversation key with the client need each other's nothing: their curve
  // work goes out in the same batch.
  const [inner, conv] = await Promise.all([
    op.userOp !== undefined ? runOne(op.userOp as KeyOp, curve) : undefined,
    conversationKey(seal.convKey, seal.sk, seal.peer, seal.scheme === 'nip04' ? 'nip04' : 'nip44', curve),
  ]);
  let response: { id: string; result: string; error?: string };
  if (inner !== undefined) {
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
  const plaintext = JSON.stringify(response);
  const content = seal.scheme === 'nip04' ? nip04Encrypt(conv.key, plaintext) : nip44Encrypt(plaintext, conv.key);
  const event = await signEvent(
    seal.sk,
    seal.pubkey,
    { kind: NIP46_KIND, content, tags: [['p', seal.peer]], created_at: seal.createdAt },
    false,
    curve,
  );
  return { ok: true, value: event, ...(conv.computed ? { convKey: conv.key } : {}), ...(inner ? { inner } : {}) };
}

/**
 * Signs; `check` verifies the signature before it leaves (BIP-340's last signing step), on the bytes the
 * returned event's id, sig and pubkey are the hex of. Every signature returned to an app is checked. A
 * NIP-46 response's own signature (the bunker key's, on the kind-24133 envelope) is not: every relay
 * verifies it on receipt and refuses it if invalid, the app's client checks it again, and it comes from the
 * same signer as the app's signatures checked here, so a fault in that signer shows there. Skipping it
 * saves one verification per NIP-46 round trip.
 */
async function signEvent(
  sk: Uint8Array,
  pubkey: string,
  unsigned: unknown,
  check: boolean,
  curve: Curve,
): Promise<NostrEvent> {
  const toSign = eventToSign(validateUnsignedEvent(unsigned), pubkey);
  return withSignature(toSign, await curve.sign(toSign.id, sk, toSign.pubkey, check));
}

async function conversationKey(
  cached: Uint8Array | undefined,
  sk: Uint8Array,
  peer: string,
  scheme: 'nip44' | 'nip04',
  curve: Curve,
): Promise<{ key: Uint8Array; computed: boolean }> {
  // A cached key was derived from this peer after a full curve check; the format check is kept so a
  // malformed job is still refused clearly. Deriving a fresh key checks the point itself (ECDH refuses an
  // x that is not on the curve).
  if (!isLowerHex(peer, 64)) throw new OpError('invalid peer pubkey');
  if (cached !== undefined) {
    if (!(cached instanceof Uint8Array) || cached.length !== 32) throw new OpError('invalid cached conversation key');
    return { key: cached, computed: false };
  }
  const sharedX = await curve.ecdhX(sk, hexToBytes(peer));
  if (scheme === 'nip04') return { key: sharedX, computed: true };
  try {
    return { key: conversationKeyOf(sharedX), computed: true };
  } finally {
    sharedX.fill(0);
  }
}

function withKey(value: string, key: Uint8Array, computed: boolean): CryptoResult {
  return computed ? { ok: true, value, convKey: key } : { ok: true, value };
}

function requireString(value: unknown, what: string): string {
  if (typeof value !== 'string') throw new OpError(`${what} must be a string`);
  return value;
}
