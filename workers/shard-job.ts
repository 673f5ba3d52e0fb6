// What every shard job does, whichever door it came from: each distinct key is loaded once (the cache,
// else the key loader), secrets reach the crypto pool only as copies that are wiped when the job ends,
// the crypto runs in batched rounds (one pool call per round for the whole job), the reply is returned
// (the shard worker completes the job with it and publishes it to the ingress process waiting for it),
// and the job's metrics are recorded. The processors (rpc-processor.ts, nip46-processor.ts) only plan the work.
//
// A key that cannot be loaded fails the requests that need it, not the job: 404 when it does not exist,
// 503 when the KeyManager or the database cannot be reached right now, 500 when what was decrypted is not
// the expected key. Retrying the whole job would hold every other request of the batch behind one key,
// and an outage outlasts the worker's immediate retries anyway; the caller (or NIP-46 client) retries.
import type { RedisClient } from '../shared/redis.js';
import { KeyManagerUnavailableError } from '../shared/custody/key-manager.js';
import { KeyNotFoundError } from '../shared/custody/key-store.js';
import type { ItemResult, ReplyMessage, RpcCall, SealedReplyMessage } from '../shared/farm/jobs.js';
import type { Logger } from '../shared/logger.js';
import { metrics } from '../shared/metrics.js';
import type { ShardNames } from '../shared/shard.js';
import type { ActivitySink } from './activity.js';
import type { CryptoOp, CryptoResult, CryptoRunner, KeyOp } from './crypto/types.js';
import type { CachedKey, ConvScheme, KeyCache } from './key-cache.js';
import type { KeyLoader } from './key-loader.js';

export interface ShardJobDeps {
  cache: KeyCache;
  keyLoader: KeyLoader;
  crypto: CryptoRunner;
  activity: ActivitySink;
  /** A command connection; replies are published with it. */
  publisher: RedisClient;
  names: ShardNames;
  logger: Logger;
}

export type KeyOutcome = { ok: true; key: CachedKey } | { ok: false; status: 404 | 500 | 503; error: string };

/** A call that needs the user's key. */
export type KeyCall = Exclude<RpcCall, { method: 'ping' | 'get_public_key' }>;

export const schemeOf = (method: string): ConvScheme => (method.startsWith('nip44') ? 'nip44' : 'nip04');

const fail = (id: string, status: number, error: string): ItemResult => ({ id, ok: false, status, error });

/** The reply of a job that could not be run (its attempts are used up): every item gets `status`. */
export function failedReply(
  jobId: string,
  data: { items: { id: string }[] },
  status: number,
  error: string,
): ReplyMessage {
  return { jobId, results: data.items.map((item) => fail(item.id, status, error)) };
}

/** One job's keys and secret copies. */
export class JobScope {
  private readonly loads = new Map<string, Promise<KeyOutcome>>();
  private readonly copies: Uint8Array[] = [];

  constructor(
    private readonly deps: ShardJobDeps,
    readonly jobId: string,
  ) {}

  /** The key `keyId`, loaded at most once for the job; its pubkey must be `pubkey`. */
  key(keyId: string, pubkey: string): Promise<KeyOutcome> {
    let p = this.loads.get(keyId);
    if (!p) this.loads.set(keyId, (p = this.load(keyId, pubkey)));
    return p;
  }

  /** A copy of a secret for the crypto pool, wiped when the job ends (a cache eviction never wipes one in flight). */
  secret(b: Uint8Array): Uint8Array {
    const c = new Uint8Array(b); // a real copy even when b is a Buffer (whose slice() is a view)
    this.copies.push(c);
    return c;
  }

  /** A copy of the cached conversation key of `keyId` with `peer`, if there is one. */
  convKey(keyId: string, peer: string, scheme: ConvScheme): Uint8Array | undefined {
    const k = this.deps.cache.getConvKey(keyId, peer, scheme);
    return k ? this.secret(k) : undefined;
  }

  /** Caches a conversation key a crypto op had to compute. */
  rememberConvKey(keyId: string, peer: string, scheme: ConvScheme, convKey: Uint8Array | undefined): void {
    if (convKey) this.deps.cache.setConvKey(keyId, peer, scheme, convKey);
  }

  /** The crypto op of a user call, with copies of its secrets. */
  keyOp(call: KeyCall, keyId: string, key: CachedKey): KeyOp {
    const sk = this.secret(key.secretKey);
    if (call.method === 'sign_event') return { op: 'sign_event', sk, pubkey: key.pubkey, event: call.event };
    const convKey = this.convKey(keyId, call.peer, schemeOf(call.method));
    const extra = convKey ? { convKey } : {};
    return 'plaintext' in call
      ? { op: call.method, sk, peer: call.peer, plaintext: call.plaintext, ...extra }
      : { op: call.method, sk, peer: call.peer, ciphertext: call.ciphertext, ...extra };
  }

  /** One crypto round: every op of the job in one call to the pool. */
  async run(ops: CryptoOp[]): Promise<CryptoResult[]> {
    if (ops.length === 0) return [];
    return this.deps.crypto.run(ops);
  }

  wipe(): void {
    for (const c of this.copies) c.fill(0);
    this.copies.length = 0;
  }

  private async load(keyId: string, pubkey: string): Promise<KeyOutcome> {
    const { cache, keyLoader, logger } = this.deps;
    try {
      const key = await cache.getKey(keyId, (id) => keyLoader.load(id));
      if (key.pubkey !== pubkey) {
        logger.error({ jobId: this.jobId, keyId }, 'decrypted key does not match the expected pubkey');
        return { ok: false, status: 500, error: 'key integrity check failed' };
      }
      return { ok: true, key };
    } catch (err) {
      if (err instanceof KeyNotFoundError) return { ok: false, status: 404, error: 'key not found' };
      logger.warn({ jobId: this.jobId, keyId, err: (err as Error).message }, 'loading a key failed');
      if (err instanceof KeyManagerUnavailableError)
        return { ok: false, status: 503, error: 'key manager unavailable' };
      return { ok: false, status: 503, error: 'key unavailable' };
    }
  }
}

/**
 * Runs one job: `plan` does the door's work with the job's scope and returns every item's result;
 * `toReply` makes the reply (sealed or not). Secrets are wiped whether or not `plan` throws; a throw
 * fails the attempt (the shard worker runs it again) and nothing is published.
 */
export async function runShardJob<R extends ReplyMessage | SealedReplyMessage>(
  deps: ShardJobDeps,
  job: { jobId: string; items: number },
  plan: (scope: JobScope) => Promise<ItemResult[]>,
  toReply: (results: ItemResult[]) => R,
): Promise<R> {
  const started = process.hrtime.bigint();
  const scope = new JobScope(deps, job.jobId);
  let results: ItemResult[];
  try {
    results = await plan(scope);
  } finally {
    scope.wipe();
  }
  // The activity recorded is appended by the shard worker before the reply leaves (shard-worker.ts finish).
  const reply = toReply(results);
  metrics.jobItems.observe(job.items);
  metrics.jobDuration.observe(Number(process.hrtime.bigint() - started) / 1e9);
  return reply;
}
