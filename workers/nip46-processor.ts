// Runs one NIP-46 job (the requests for one shard that one relay-ingest gathered): decrypt each request
// with its bunker key, check the authorization (revoked, expired, connect/secret binding) and the policy,
// do the work with the USER's key, encrypt the response to the client in the request's own scheme
// (NIP-44 v2, or NIP-04 for a NIP-04 request) and sign it with the bunker key. The crypto runs on the
// pool in two batched rounds, one call per round for the whole job: decrypt the requests; then, for each,
// the user operation, the response's encryption and its signature in one op (nip46_respond). Key loads,
// secret copies, the reply and the metrics are the job skeleton's (shard-job.ts); parameters are checked
// as on the HTTP door (shared/farm/rpc-params.ts).
//
// Every request gets exactly one response, with `error` on every failure, except one whose content
// cannot be decrypted: nothing meaningful can be encrypted back, so it is a counted drop.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Nip46Authorization } from '../database/queries/nip46.js';
import { publishEviction } from '../shared/evictions.js';
import type { ItemResult, Nip46Item, Nip46JobData, ReplyMessage, RpcMethod } from '../shared/farm/jobs.js';
import { RpcParamsError, parseRpcCall } from '../shared/farm/rpc-params.js';
import { metrics } from '../shared/metrics.js';
import { DENIED_BY_POLICY, USES_EXHAUSTED, callRefusal, policyAsks } from '../shared/policy.js';
import { announceBunker } from '../shared/nip46/channels.js';
import {
  NIP46_METHODS,
  isNip04Payload,
  parseNip46Request,
  type Nip46Request,
  type Nip46Response,
} from '../shared/nip46/protocol.js';
import type { NostrEvent } from '../shared/nostr/types.js';
import type { CryptoOp, CryptoResult, KeyOp } from './crypto/types.js';
import type { CachedKey, ConvScheme } from './key-cache.js';
import type { Nip46Approvals } from './postgres-approvals.js';
import { runShardJob, schemeOf, type JobScope, type KeyCall, type ShardJobDeps } from './shard-job.js';

/** The authorizations table as the NIP-46 handler needs it (database/queries/nip46.ts in production). */
export interface Nip46Store {
  findAuthorizations(bunkerPubkeys: string[]): Promise<Nip46Authorization[]>;
  /** Binds the client if the secret hash matches and no other client holds the authorization. */
  bindClient(authorizationId: string, secretHash: Buffer, clientPubkey: string): Promise<boolean>;
  /** Ends the authorization at the bound client's request. */
  logout(authorizationId: string, clientPubkey: string): Promise<boolean>;
  /** Takes one of the authorization's `max` uses of its policy; false when they are all taken. */
  takeUse(authorizationId: string, max: number): Promise<boolean>;
}

/** The job skeleton's needs (its publisher also announces bindings and logouts), plus the store. */
export interface Nip46ProcessorDeps extends ShardJobDeps {
  store: Nip46Store;
  /** Asking the user for what a policy with `ask` does not allow; without it such a request is refused. */
  approvals?: Nip46Approvals;
  /** Seconds since the epoch for response events; a parameter for tests. */
  now?: () => number;
}

export type Nip46Processor = (jobId: string, data: Nip46JobData) => Promise<ReplyMessage>;

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

/** Database failures (authorizations, binding, logout) fail the attempt so the shard worker runs it again; nothing was published yet. */
class RetryableError extends Error {}

const sha256 = (s: string) => createHash('sha256').update(s).digest();

/** `{[name]: value}` when value is defined, else `{}` (optional fields stay absent, not undefined). */
const optional = <K extends string, V>(name: K, value: V | undefined) =>
  value === undefined ? {} : ({ [name]: value } as Record<K, V>);

/** A request's method as a metric label: a known NIP-46 method, "other", or "invalid" when unreadable. */
function methodLabel(method: string | undefined): string {
  if (method === undefined) return 'invalid';
  return (NIP46_METHODS as readonly string[]).includes(method) ? method : 'other';
}

export function createNip46Processor(deps: Nip46ProcessorDeps): Nip46Processor {
  const { store, activity, logger } = deps;
  const now = deps.now ?? (() => Math.floor(Date.now() / 1000));

  return async function processNip46Job(jobId: string, data: Nip46JobData): Promise<ReplyMessage> {
    try {
      return await runShardJob(
        deps,
        { jobId, items: data.items.length },
        (job) => plan(job, data),
        (results) => ({ jobId, results }),
      );
    } catch (err) {
      if (err instanceof RetryableError) logger.warn({ jobId, err: err.message }, 'nip46 job will be retried');
      throw err;
    }
  };

  async function plan(job: JobScope, data: Nip46JobData): Promise<ItemResult[]> {
    const work: Work[] = data.items.map((item) => ({
      item,
      client: item.event.pubkey,
      scheme: isNip04Payload(item.event.content) ? 'nip04' : 'nip44',
    }));
    let auths: Nip46Authorization[];
    try {
      auths = await store.findAuthorizations([...new Set(data.items.map((i) => i.bunkerPubkey))]);
    } catch (err) {
      throw new RetryableError(`loading authorizations failed: ${(err as Error).message}`);
    }
    const byBunker = new Map(auths.map((a) => [a.bunkerPubkey, a]));

    // Bunker keys: without one nothing can be decrypted or signed, so the request is dropped.
    for (const w of work) {
      w.auth = byBunker.get(w.item.bunkerPubkey);
      if (w.auth) void job.key(w.auth.bunkerKeyId, w.auth.bunkerPubkey); // every distinct key starts loading at once
    }
    for (const w of work) {
      if (!w.auth) {
        w.drop = 'unknown bunker';
        continue;
      }
      const k = await job.key(w.auth.bunkerKeyId, w.auth.bunkerPubkey);
      if (k.ok) w.bunkerKey = k.key;
      else w.drop = `bunker key unavailable: ${k.error}`;
    }

    // Round 1: decrypt the requests.
    await round(
      job,
      work.filter((w) => !w.drop),
      (w) => ({
        op: w.scheme === 'nip04' ? 'nip04_decrypt' : 'nip44_decrypt',
        sk: job.secret(w.bunkerKey!.secretKey),
        peer: w.client,
        ciphertext: w.item.event.content,
        ...optional('convKey', job.convKey(w.auth!.bunkerKeyId, w.client, w.scheme)),
      }),
      (w, r) => {
        if (!r.ok) {
          w.drop = 'undecryptable';
          return;
        }
        job.rememberConvKey(w.auth!.bunkerKeyId, w.client, w.scheme, r.convKey);
        const parsed = parseNip46Request(r.value as string);
        if (parsed.ok) w.request = parsed.request;
        else if (parsed.id !== undefined) w.response = { id: parsed.id, result: '', error: parsed.error };
        else w.drop = 'unreadable request';
      },
    );

    // Decide each request: answered at once, or a user-key operation for round 2.
    for (const w of work) {
      if (w.drop || w.response || !w.request) continue;
      await decide(w, job);
    }

    // Round 2: each answer in one op: the user-key operation if any, then the response encrypted to
    // its client in the request's scheme and signed with the bunker key.
    const createdAt = now();
    await round(
      job,
      work.filter((w) => !w.drop && (w.response || w.userOp)),
      (w) => ({
        op: 'nip46_respond',
        id: w.response?.id ?? w.request!.id,
        ...(w.response
          ? { answer: { result: w.response.result, ...optional('error', w.response.error) } }
          : { userOp: w.userOp!.op }),
        seal: {
          sk: job.secret(w.bunkerKey!.secretKey),
          pubkey: w.auth!.bunkerPubkey,
          peer: w.client,
          scheme: w.scheme,
          createdAt,
          ...optional('convKey', job.convKey(w.auth!.bunkerKeyId, w.client, w.scheme)),
        },
      }),
      (w, r) => {
        if (!r.ok) {
          w.drop = `answering failed: ${r.error}`;
          return;
        }
        job.rememberConvKey(w.auth!.bunkerKeyId, w.client, w.scheme, r.convKey);
        w.signed = r.value as NostrEvent;
        const inner = r.inner;
        if (!w.userOp || !inner) return;
        const { method, keyId, peer } = w.userOp;
        if (!inner.ok) {
          w.response = { id: w.request!.id, result: '', error: inner.error };
          return;
        }
        if (peer) job.rememberConvKey(keyId, peer, schemeOf(method), inner.convKey);
        const userSigned = method === 'sign_event' ? (inner.value as NostrEvent) : undefined;
        w.response = { id: w.request!.id, result: '' }; // what was sent is inside w.signed
        activity.record({
          authorizationId: w.auth!.id,
          method,
          kind: userSigned?.kind,
          eventId: userSigned?.id,
          door: 'nip46',
        });
      },
    );

    return work.map((w): ItemResult => {
      const outcome = w.signed ? (w.response?.error === undefined ? 'ok' : 'error') : 'dropped';
      metrics.nip46Processed.inc({ outcome });
      logger.debug(
        {
          traceId: w.item.traceId,
          jobId: job.jobId,
          requestEvent: w.item.id,
          method: w.request?.method,
          outcome,
          reason: w.drop ?? w.response?.error,
        },
        'nip46 request done',
      );
      return w.signed
        ? { id: w.item.id, ok: true, result: w.signed, method: methodLabel(w.request?.method) }
        : { id: w.item.id, ok: false, status: 400, error: w.drop ?? 'no response' };
    });
  }

  /** One batched crypto call for `ws`; `apply` sees each request's own result. */
  async function round(
    job: JobScope,
    ws: Work[],
    opOf: (w: Work) => CryptoOp,
    apply: (w: Work, r: CryptoResult) => void,
  ): Promise<void> {
    if (ws.length === 0) return;
    const out = await job.run(ws.map(opOf));
    for (const [i, w] of ws.entries()) apply(w, out[i] ?? { ok: false, error: 'no result' });
  }

  /** Applies the authorization and the method to a decrypted request. */
  async function decide(w: Work, job: JobScope): Promise<void> {
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
    if (typeof secret !== 'string' || secret.length === 0 || secret.length > 256)
      return refuse('connect needs the secret');
    const hash = sha256(secret);
    if (hash.length !== auth.secretHash.length || !timingSafeEqual(hash, auth.secretHash))
      return refuse('invalid secret');
    let bound: boolean;
    try {
      bound = await store.bindClient(auth.id, hash, w.client);
    } catch (err) {
      throw new RetryableError(`binding a client failed: ${(err as Error).message}`);
    }
    if (!bound) return refuse('this bunker is already connected to another client');
    auth.clientPubkey = w.client;
    // relay-ingest re-reads the bunker and stops limiting this client as an unbound one.
    await announceBunker(deps.publisher, deps.names.prefix, {
      type: 'bunker_added',
      bunkerPubkey: auth.bunkerPubkey,
    }).catch((err: Error) =>
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
    await publishEviction(deps.publisher, deps.names.evictChannel(), {
      type: 'authorization',
      authorizationId: auth.id,
    }).catch((err: Error) =>
      logger.warn({ authorizationId: auth.id, err: err.message }, 'announcing a nip46 logout failed'),
    );
    answer('ack');
  }

  async function useApproval(id: string, authorizationId: string, eventId: string) {
    try {
      return await deps.approvals?.use(id, authorizationId, eventId);
    } catch (err) {
      throw new RetryableError(`using an approval failed: ${(err as Error).message}`);
    }
  }

  /** Stores the request for its user and answers NIP-46's auth_url with the approval's address. */
  async function ask(w: Work, approvals: Nip46Approvals, call: KeyCall, refuse: (e: string) => void): Promise<void> {
    let asked: { url: string } | { refused: string };
    try {
      asked = await approvals.ask({ auth: w.auth!, event: w.item.event, call });
    } catch (err) {
      throw new RetryableError(`asking for approval failed: ${(err as Error).message}`);
    }
    if ('refused' in asked) return void refuse(asked.refused);
    w.response = { id: w.request!.id, result: 'auth_url', error: asked.url };
  }

  async function userOperation(
    w: Work,
    method: KeyCall['method'],
    job: JobScope,
    refuse: (e: string) => void,
  ): Promise<void> {
    const auth = w.auth!;
    let call: KeyCall;
    try {
      call = parseRpcCall(method, w.request!.params) as KeyCall;
    } catch (err) {
      if (err instanceof RpcParamsError) return refuse(err.message);
      throw err;
    }
    if (w.item.approvalId !== undefined) {
      // Sent again after its user decided: the decision is used once, whatever the policy says now.
      const decision = await useApproval(w.item.approvalId, auth.id, w.item.id);
      if (decision === 'denied') return refuse('the user denied this request');
      if (decision !== 'approved') return void (w.drop = 'approval used or gone');
    } else {
      const refusal = callRefusal(auth.permissions, call, auth.grantedKinds);
      if (refusal !== undefined) {
        if (refusal !== DENIED_BY_POLICY || !deps.approvals || !policyAsks(auth.permissions)) return refuse(refusal);
        return ask(w, deps.approvals, call, refuse);
      }
    }
    const maxUses = auth.permissions.max_uses;
    if (maxUses !== undefined && !(await store.takeUse(auth.id, maxUses))) return refuse(USES_EXHAUSTED);
    const k = await job.key(auth.userKeyId, auth.userPubkey);
    if (!k.ok) return refuse(`user key unavailable: ${k.error}`);
    w.userOp = {
      op: job.keyOp(call, auth.userKeyId, k.key),
      method,
      keyId: auth.userKeyId,
      peer: 'peer' in call ? call.peer : undefined,
    };
  }
}
