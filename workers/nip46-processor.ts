// Runs one NIP-46 job (the requests for one shard that one relay-ingest gathered): decrypt each request
// with its bunker key, check the authorization (revoked, expired, connect/secret binding) and the policy,
// do the work with the USER's key, encrypt the response to the client in the request's own scheme
// (NIP-44 v2, or NIP-04 for a NIP-04 request) and sign it with the bunker key. The crypto runs on the
// pool in two batched rounds, one call per round for the whole job: decrypt the requests; then, for each,
// the user operation, the response's encryption and its signature in one op (nip46_respond).
//
// Every request gets exactly one response, with `error` on every failure, except one whose content
// cannot be decrypted: nothing meaningful can be encrypted back, so it is a counted drop.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { RedisClient } from '../shared/redis.js';
import type { Nip46Authorization } from '../database/queries/nip46.js';
import { publishEviction } from '../shared/evictions.js';
import type { ItemResult, Nip46Item, Nip46JobData, ReplyMessage, RpcMethod } from '../shared/farm/jobs.js';
import type { Logger } from '../shared/logger.js';
import { metrics } from '../shared/metrics.js';
import { policyPermits } from '../shared/policy.js';
import { announceBunker } from '../shared/nip46/channels.js';
import { NIP46_KIND, NIP46_METHODS, isNip04Payload, parseNip46Request, type Nip46Request, type Nip46Response } from '../shared/nip46/protocol.js';
import { EventValidationError, validateUnsignedEvent } from '../shared/nostr/event.js';
import { isValidPubkeyHex } from '../shared/nostr/keys.js';
import type { NostrEvent, UnsignedEvent } from '../shared/nostr/types.js';
import type { ShardNames } from '../shared/shard.js';
import type { ActivitySink } from './activity.js';
import type { CryptoOp, CryptoResult, CryptoRunner, KeyOp } from './crypto/types.js';
import type { CachedKey, ConvScheme, KeyCache } from './key-cache.js';
import { isKeyNotFound, type KeyLoader } from './key-loader.js';
import { publishReply, type RpcProcessorDeps } from './rpc-processor.js';

/** The authorizations table as the NIP-46 handler needs it (database/queries/nip46.ts in production). */
export interface Nip46Store {
  findAuthorizations(bunkerPubkeys: string[]): Promise<Nip46Authorization[]>;
  /** Binds the client if the secret hash matches and no other client holds the authorization. */
  bindClient(authorizationId: string, secretHash: Buffer, clientPubkey: string): Promise<boolean>;
  /** Ends the authorization at the bound client's request. */
  logout(authorizationId: string, clientPubkey: string): Promise<boolean>;
}

/** The RPC processor's needs (its publisher also announces logout evictions here), plus the store. */
export interface Nip46ProcessorDeps extends RpcProcessorDeps {
  store: Nip46Store;
  /** Seconds since the epoch for response events; a parameter for tests. */
  now?: () => number;
}

export type Nip46Processor = (jobId: string, data: Nip46JobData) => Promise<ReplyMessage>;

const MAX_TEXT = 512 * 1024;

/** What one request has become so far; `response` or `drop` is set once it is decided. */
interface Work {
  item: Nip46Item;
  client: string;
  scheme: ConvScheme;
  auth?: Nip46Authorization;
  bunkerKey?: CachedKey;
  request?: Nip46Request;
  response?: Nip46Response;
  drop?: string;
  /** The user-key operation the request needs, and how its result becomes the response. */
  userOp?: { op: KeyOp; method: RpcMethod; keyId: string; peer?: string };
  /** The signed response event. */
  signed?: NostrEvent;
}

type KeyOutcome = { ok: true; key: CachedKey } | { ok: false; error: string };

/** A crypto op before the secret key is attached. */
type OpWithoutKey = KeyOp extends infer T ? (T extends KeyOp ? Omit<T, 'sk' | 'convKey'> : never) : never;

/** Per job: keys loaded once each, and secret copies that are zeroed when the job ends. */
interface JobTools {
  keyFor(keyId: string, pubkey: string): Promise<KeyOutcome>;
  copy(b: Uint8Array): Uint8Array;
}

/** Transient failures (database, KeyManager) fail the job so BullMQ runs it again; nothing was published yet. */
class RetryableError extends Error {}

const sha256 = (s: string) => createHash('sha256').update(s).digest();

/** `{[name]: value}` when value is defined, else `{}` (optional fields stay absent, not undefined). */
const optional = <K extends string, V>(name: K, value: V | undefined) => (value === undefined ? {} : ({ [name]: value } as Record<K, V>));

/** A request's method as a metric label: a known NIP-46 method, "other", or "invalid" when unreadable. */
function methodLabel(method: string | undefined): string {
  if (method === undefined) return 'invalid';
  return (NIP46_METHODS as readonly string[]).includes(method) ? method : 'other';
}

export function createNip46Processor(deps: Nip46ProcessorDeps): Nip46Processor {
  const { store, cache, crypto, activity, logger } = deps;
  const now = deps.now ?? (() => Math.floor(Date.now() / 1000));
  const load = (keyId: string) => deps.keyLoader.load(keyId);

  async function keyOf(keyId: string, pubkey: string): Promise<KeyOutcome> {
    try {
      const key = await cache.getKey(keyId, load);
      if (key.pubkey !== pubkey) {
        logger.error({ keyId }, 'decrypted key does not match the expected pubkey');
        return { ok: false, error: 'key integrity check failed' };
      }
      return { ok: true, key };
    } catch (err) {
      if (isKeyNotFound(err)) return { ok: false, error: 'key not found' };
      throw new RetryableError(`loading key ${keyId} failed: ${(err as Error).message}`);
    }
  }

  /** Loads each distinct key once for the whole job. */
  function keyLoads() {
    const loads = new Map<string, Promise<KeyOutcome>>();
    return (keyId: string, pubkey: string) => {
      let p = loads.get(keyId);
      if (!p) loads.set(keyId, (p = keyOf(keyId, pubkey)));
      return p;
    };
  }

  return async function processNip46Job(jobId: string, data: Nip46JobData): Promise<ReplyMessage> {
    const started = process.hrtime.bigint();
    const copies: Uint8Array[] = [];
    const copy = (b: Uint8Array) => {
      const c = new Uint8Array(b);
      copies.push(c);
      return c;
    };
    const cachedConv = (keyId: string, peer: string, scheme: ConvScheme) => {
      const k = cache.getConvKey(keyId, peer, scheme);
      return k ? copy(k) : undefined;
    };
    const work: Work[] = data.items.map((item) => ({
      item,
      client: item.event.pubkey,
      scheme: isNip04Payload(item.event.content) ? 'nip04' : 'nip44',
    }));

    try {
      let auths: Nip46Authorization[];
      try {
        auths = await store.findAuthorizations([...new Set(data.items.map((i) => i.bunkerPubkey))]);
      } catch (err) {
        throw new RetryableError(`loading authorizations failed: ${(err as Error).message}`);
      }
      const byBunker = new Map(auths.map((a) => [a.bunkerPubkey, a]));
      const keyFor = keyLoads();

      // Bunker keys: without one nothing can be decrypted or signed, so the request is dropped.
      for (const w of work) {
        w.auth = byBunker.get(w.item.bunkerPubkey);
        if (!w.auth) {
          w.drop = 'unknown bunker';
          continue;
        }
        const k = await keyFor(w.auth.bunkerKeyId, w.auth.bunkerPubkey);
        if (k.ok) w.bunkerKey = k.key;
        else w.drop = `bunker key unavailable: ${k.error}`;
      }

      // Round 1: decrypt the requests.
      await round(
        work.filter((w) => !w.drop),
        (w) => {
          const keyId = w.auth!.bunkerKeyId;
          return {
            op: w.scheme === 'nip04' ? 'nip04_decrypt' : 'nip44_decrypt',
            sk: copy(w.bunkerKey!.secretKey),
            peer: w.client,
            ciphertext: w.item.event.content,
            convKey: cachedConv(keyId, w.client, w.scheme),
          };
        },
        (w, r) => {
          if (!r.ok) {
            w.drop = 'undecryptable';
            return;
          }
          if (r.convKey) cache.setConvKey(w.auth!.bunkerKeyId, w.client, w.scheme, r.convKey);
          const parsed = parseNip46Request(r.value as string);
          if (parsed.ok) w.request = parsed.request;
          else if (parsed.id !== undefined) w.response = { id: parsed.id, result: '', error: parsed.error };
          else w.drop = 'unreadable request';
        },
      );

      // Decide each request: answered at once, or a user-key operation for round 2.
      for (const w of work) {
        if (w.drop || w.response || !w.request) continue;
        await decide(w, { keyFor, copy });
      }

      // Round 2: each answer in one op: the user-key operation if any, then the response encrypted to
      // its client in the request's scheme and signed with the bunker key.
      const createdAt = now();
      await round(
        work.filter((w) => !w.drop && (w.response || w.userOp)),
        (w) => ({
          op: 'nip46_respond',
          id: w.response?.id ?? w.request!.id,
          ...(w.response ? { answer: { result: w.response.result, ...(w.response.error !== undefined ? { error: w.response.error } : {}) } } : { userOp: w.userOp!.op }),
          seal: {
            sk: copy(w.bunkerKey!.secretKey),
            pubkey: w.auth!.bunkerPubkey,
            peer: w.client,
            scheme: w.scheme,
            createdAt,
            ...optional('convKey', cachedConv(w.auth!.bunkerKeyId, w.client, w.scheme)),
          },
        }),
        (w, r) => {
          if (!r.ok) {
            w.drop = `answering failed: ${r.error}`;
            return;
          }
          if (r.convKey) cache.setConvKey(w.auth!.bunkerKeyId, w.client, w.scheme, r.convKey);
          w.signed = r.value as NostrEvent;
          const inner = r.inner;
          if (!w.userOp || !inner) return;
          const { method, keyId, peer } = w.userOp;
          if (!inner.ok) {
            w.response = { id: w.request!.id, result: '', error: inner.error };
            return;
          }
          if (inner.convKey && peer) cache.setConvKey(keyId, peer, method.startsWith('nip44') ? 'nip44' : 'nip04', inner.convKey);
          const userSigned = method === 'sign_event' ? (inner.value as NostrEvent) : undefined;
          w.response = { id: w.request!.id, result: '' }; // what was sent is inside w.signed
          activity.record({ authorizationId: w.auth!.id, method, kind: userSigned?.kind, eventId: userSigned?.id, door: 'nip46' });
        },
      );
    } catch (err) {
      if (err instanceof RetryableError) {
        logger.warn({ jobId, err: err.message }, 'nip46 job will be retried');
      }
      throw err;
    } finally {
      for (const c of copies) c.fill(0);
    }

    const results: ItemResult[] = work.map((w) => {
      const outcome = w.signed ? (w.response?.error === undefined ? 'ok' : 'error') : 'dropped';
      metrics.nip46Processed.inc({ outcome });
      logger.debug(
        { traceId: w.item.traceId, jobId, requestEvent: w.item.id, method: w.request?.method, outcome, reason: w.drop ?? w.response?.error },
        'nip46 request done',
      );
      return w.signed
        ? { id: w.item.id, ok: true, result: w.signed, method: methodLabel(w.request?.method) }
        : { id: w.item.id, ok: false, status: 400, error: w.drop ?? 'no response' };
    });
    const reply: ReplyMessage = { jobId, results };
    try {
      await publishReply(deps.publisher, deps.names, data.replyTo, reply);
    } catch (err) {
      logger.warn({ jobId, err: (err as Error).message }, 'publishing a nip46 reply failed');
    }
    metrics.jobItems.observe(data.items.length);
    metrics.jobDuration.observe(Number(process.hrtime.bigint() - started) / 1e9);
    return reply;
  };

  /** One batched crypto call for `ws`; `apply` sees each request's own result. */
  async function round(ws: Work[], opOf: (w: Work) => CryptoOp, apply: (w: Work, r: CryptoResult) => void): Promise<void> {
    if (ws.length === 0) return;
    const out = await crypto.run(ws.map(opOf));
    ws.forEach((w, i) => apply(w, out[i] ?? { ok: false, error: 'no result' }));
  }

  /** Applies the authorization and the method to a decrypted request. */
  async function decide(w: Work, job: JobTools): Promise<void> {
    const auth = w.auth!;
    const req = w.request!;
    const answer = (result: string) => (w.response = { id: req.id, result });
    const refuse = (error: string) => (w.response = { id: req.id, result: '', error });

    if (auth.revokedAt) return void refuse('authorization revoked');
    if (auth.expiresAt && auth.expiresAt.getTime() <= Date.now()) return void refuse('authorization expired');

    if (req.method === 'connect') return void (await connect(w, answer, refuse));
    if (auth.clientPubkey !== w.client) return void refuse('not connected: send connect with the secret first');

    switch (req.method) {
      case 'ping':
        return void answer('pong');
      case 'get_public_key':
        activity.record({ authorizationId: auth.id, method: 'get_public_key', door: 'nip46' });
        return void answer(auth.userPubkey);
      case 'switch_relays':
        return void answer(JSON.stringify(auth.relays));
      case 'logout':
        return void (await logout(w, answer, refuse));
      case 'sign_event':
      case 'nip44_encrypt':
      case 'nip44_decrypt':
      case 'nip04_encrypt':
      case 'nip04_decrypt':
        return void (await userOperation(w, req.method, job, refuse));
      default:
        return void refuse(`unknown method: ${req.method.slice(0, 64)}`);
    }
  }

  async function connect(w: Work, answer: (r: string) => void, refuse: (e: string) => void): Promise<void> {
    const auth = w.auth!;
    if (auth.clientPubkey === w.client) return answer('ack');
    if (auth.clientPubkey !== null) return refuse('this bunker is already connected to another client');
    const secret = w.request!.params[1];
    if (typeof secret !== 'string' || secret.length === 0 || secret.length > 256) return refuse('connect needs the secret');
    const hash = sha256(secret);
    if (hash.length !== auth.secretHash.length || !timingSafeEqual(hash, auth.secretHash)) return refuse('invalid secret');
    let bound: boolean;
    try {
      bound = await store.bindClient(auth.id, hash, w.client);
    } catch (err) {
      throw new RetryableError(`binding a client failed: ${(err as Error).message}`);
    }
    if (!bound) return refuse('this bunker is already connected to another client');
    auth.clientPubkey = w.client;
    // relay-ingest re-reads the bunker and stops limiting this client as an unbound one.
    await announceBunker(deps.publisher, deps.names.prefix, { type: 'bunker_added', bunkerPubkey: auth.bunkerPubkey }).catch((err: Error) =>
      logger.warn({ authorizationId: auth.id, err: err.message }, 'announcing a nip46 binding failed'),
    );
    answer('ack');
  }

  async function logout(w: Work, answer: (r: string) => void, refuse: (e: string) => void): Promise<void> {
    const auth = w.auth!;
    let done: boolean;
    try {
      done = await store.logout(auth.id, w.client);
    } catch (err) {
      throw new RetryableError(`logout failed: ${(err as Error).message}`);
    }
    if (!done) return refuse('logout failed');
    auth.revokedAt = new Date();
    await publishEviction(deps.publisher, deps.names.evictChannel(), { type: 'authorization', authorizationId: auth.id }).catch((err: Error) =>
      logger.warn({ authorizationId: auth.id, err: err.message }, 'announcing a nip46 logout failed'),
    );
    answer('ack');
  }

  async function userOperation(
    w: Work,
    method: Exclude<RpcMethod, 'ping' | 'get_public_key'>,
    job: JobTools,
    refuse: (e: string) => void,
  ): Promise<void> {
    const auth = w.auth!;
    const params = w.request!.params;
    let op: OpWithoutKey;
    let kind: number | undefined;
    let peer: string | undefined;
    if (method === 'sign_event') {
      let event: UnsignedEvent;
      try {
        event = validateUnsignedEvent(params[0]);
      } catch (err) {
        if (err instanceof EventValidationError) return refuse(`sign_event: ${err.message}`);
        throw err;
      }
      kind = event.kind;
      op = { op: 'sign_event', pubkey: auth.userPubkey, event };
    } else {
      const [p, text] = params;
      if (!isValidPubkeyHex(p)) return refuse(`${method}: params[0] must be a peer pubkey (64 hex)`);
      if (typeof text !== 'string' || text.length > MAX_TEXT) return refuse(`${method}: params[1] must be a string`);
      peer = p;
      op = method === 'nip44_encrypt' || method === 'nip04_encrypt' ? { op: method, peer, plaintext: text } : { op: method, peer, ciphertext: text };
    }
    if (!policyPermits(auth.permissions, method, kind)) return refuse('Operation denied by policy');
    const k = await job.keyFor(auth.userKeyId, auth.userPubkey);
    if (!k.ok) return refuse(`user key unavailable: ${k.error}`);
    const sk = job.copy(k.key.secretKey);
    const convKey = peer ? cache.getConvKey(auth.userKeyId, peer, method.startsWith('nip44') ? 'nip44' : 'nip04') : undefined;
    w.userOp = {
      op: { ...op, sk, ...(convKey ? { convKey: job.copy(convKey) } : {}) } as KeyOp,
      method,
      keyId: auth.userKeyId,
      peer,
    };
  }
}
