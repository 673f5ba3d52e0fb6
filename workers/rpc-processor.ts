// Runs one RPC job (a micro-batch of requests for one shard): keys from the cache (cold ones loaded once),
// all of the job's crypto in ONE call to the crypto pool, results published to the api process that waits
// for them and returned (BullMQ stores the return value, which the api reads if the reply was lost).
// A job's calls arrive sealed and its results leave sealed (shared/farm/jobs.ts): open only in this memory.
import { publishDirect } from '../shared/pubsub.js';
import type { RedisClient } from '../shared/redis.js';
import type { ItemResult, ReplyMessage, RpcItem, RpcJobData, SealedReplyMessage } from '../shared/farm/jobs.js';
import type { PayloadSealer } from '../shared/farm/payload-seal.js';
import { openRpcJob, sealReply } from '../shared/farm/rpc-sealing.js';
import type { Logger } from '../shared/logger.js';
import { metrics } from '../shared/metrics.js';
import type { ShardNames } from '../shared/shard.js';
import type { NostrEvent } from '../shared/nostr/types.js';
import type { ActivitySink } from './activity.js';
import type { CryptoOp, CryptoRunner } from './crypto/types.js';
import type { CachedKey, ConvScheme, KeyCache } from './key-cache.js';
import { isKeyManagerUnavailable, isKeyNotFound, type KeyLoader } from './key-loader.js';

export interface RpcProcessorDeps {
  cache: KeyCache;
  keyLoader: KeyLoader;
  crypto: CryptoRunner;
  activity: ActivitySink;
  /** A command connection; replies are published with it. */
  publisher: RedisClient;
  names: ShardNames;
  logger: Logger;
}

export interface RpcJobDeps extends RpcProcessorDeps {
  /** Opens the jobs' calls and seals their results: the farm payload key. */
  sealer: PayloadSealer;
}

export type RpcProcessor = (jobId: string, data: RpcJobData) => Promise<SealedReplyMessage>;

const fail = (id: string, status: number, error: string): ItemResult => ({ id, ok: false, status, error });

type KeyOutcome = { ok: true; key: CachedKey } | { ok: false; status: number; error: string };

const schemeOf = (method: string): ConvScheme => (method.startsWith('nip44') ? 'nip44' : 'nip04');

/** The reply of a job that could not be run (its attempts are used up): every item gets `status`. */
export function failedReply(jobId: string, data: { items: { id: string }[] }, status: number, error: string): ReplyMessage {
  return { jobId, results: data.items.map((item) => fail(item.id, status, error)) };
}

export async function publishReply(publisher: RedisClient, names: ShardNames, replyTo: string, reply: ReplyMessage | SealedReplyMessage): Promise<void> {
  await publishDirect(publisher, names.replyChannel(replyTo), JSON.stringify(reply));
}

export function createRpcProcessor(deps: RpcJobDeps): RpcProcessor {
  const { cache, keyLoader, crypto, activity, logger, sealer } = deps;
  const load = (keyId: string) => keyLoader.load(keyId);

  async function keyFor(item: RpcItem): Promise<KeyOutcome> {
    try {
      const key = await cache.getKey(item.keyId, load);
      if (key.pubkey !== item.pubkey) {
        logger.error({ traceId: item.traceId, keyId: item.keyId }, 'decrypted key does not match the expected pubkey');
        return { ok: false, status: 500, error: 'key integrity check failed' };
      }
      return { ok: true, key };
    } catch (err) {
      if (isKeyNotFound(err)) return { ok: false, status: 404, error: 'key not found' };
      const unavailable = isKeyManagerUnavailable(err);
      logger.warn({ traceId: item.traceId, keyId: item.keyId, err: (err as Error).message }, 'loading a key failed');
      return { ok: false, status: 503, error: unavailable ? 'key manager unavailable' : 'key unavailable' };
    }
  }

  async function reply(jobId: string, replyTo: string, results: ItemResult[]): Promise<SealedReplyMessage> {
    const sealed = sealReply(sealer, jobId, results);
    try {
      await publishReply(deps.publisher, deps.names, replyTo, sealed);
    } catch (err) {
      // The api reads the stored return value when the reply does not come.
      logger.warn({ jobId, err: (err as Error).message }, 'publishing a reply failed');
    }
    return sealed;
  }

  return async function processRpcJob(jobId: string, data: RpcJobData): Promise<SealedReplyMessage> {
    const started = process.hrtime.bigint();
    const door = data.door ?? 'http';
    let items: RpcItem[];
    try {
      items = openRpcJob(sealer, jobId, data);
    } catch (err) {
      // Altered in Redis, moved from another job, or sealed under another farm's key: nothing runs.
      logger.error({ jobId, traceIds: data.items.map((i) => i.traceId), err: (err as Error).message }, 'the calls of an rpc job could not be opened');
      return reply(jobId, data.replyTo, data.items.map((i) => fail(i.id, 500, 'calls could not be opened')));
    }
    const results: ItemResult[] = new Array(items.length);

    // Distinct keys of the job, each looked up once.
    const keyLookups = new Map<string, Promise<KeyOutcome>>();
    for (const item of items) {
      if (item.call.method === 'ping' || item.call.method === 'get_public_key') continue;
      if (!keyLookups.has(item.keyId)) keyLookups.set(item.keyId, keyFor(item));
    }
    const keys = new Map<string, KeyOutcome>();
    for (const [keyId, p] of keyLookups) keys.set(keyId, await p);

    // Ops carry copies of secrets: a cache eviction zeroes the cached buffers, never the ones in flight.
    const ops: CryptoOp[] = [];
    const opItem: number[] = [];
    const copies: Uint8Array[] = [];
    const copy = (b: Uint8Array) => {
      const c = new Uint8Array(b); // a real copy even when b is a Buffer (whose slice() is a view)
      copies.push(c);
      return c;
    };
    const cachedConvKey = (keyId: string, peer: string, method: string) => {
      const cached = cache.getConvKey(keyId, peer, schemeOf(method));
      return cached ? copy(cached) : undefined;
    };
    items.forEach((item, i) => {
      const call = item.call;
      if (call.method === 'ping') {
        results[i] = { id: item.id, ok: true, result: 'pong' };
        return;
      }
      if (call.method === 'get_public_key') {
        results[i] = { id: item.id, ok: true, result: item.pubkey };
        return;
      }
      const k = keys.get(item.keyId)!;
      if (!k.ok) {
        results[i] = fail(item.id, k.status, k.error);
        return;
      }
      const sk = copy(k.key.secretKey);
      if (call.method === 'sign_event') {
        ops.push({ op: 'sign_event', sk, pubkey: item.pubkey, event: call.event });
      } else if ('plaintext' in call) {
        ops.push({ op: call.method, sk, peer: call.peer, plaintext: call.plaintext, convKey: cachedConvKey(item.keyId, call.peer, call.method) });
      } else if ('ciphertext' in call) {
        ops.push({ op: call.method, sk, peer: call.peer, ciphertext: call.ciphertext, convKey: cachedConvKey(item.keyId, call.peer, call.method) });
      } else {
        results[i] = fail(item.id, 400, 'unsupported method');
        return;
      }
      opItem.push(i);
    });

    if (ops.length > 0) {
      try {
        const out = await crypto.run(ops);
        out.forEach((r, j) => {
          const i = opItem[j]!;
          const item = items[i]!;
          if (r.ok) {
            results[i] = { id: item.id, ok: true, result: r.value };
            if (r.convKey && 'peer' in item.call) cache.setConvKey(item.keyId, item.call.peer, schemeOf(item.call.method), r.convKey);
          } else {
            results[i] = fail(item.id, 400, r.error);
          }
        });
      } finally {
        for (const c of copies) c.fill(0);
      }
    }

    items.forEach((item, i) => {
      const r = results[i] ?? (results[i] = fail(item.id, 500, 'no result'));
      if (r.ok) {
        const signed = item.call.method === 'sign_event' ? (r.result as NostrEvent) : undefined;
        activity.record({ authorizationId: item.authorizationId, method: item.call.method, kind: signed?.kind, eventId: signed?.id, door });
      }
      logger.debug({ traceId: item.traceId, jobId, method: item.call.method, status: r.ok ? 200 : r.status }, 'rpc item done');
    });

    const sealed = await reply(jobId, data.replyTo, results);
    metrics.jobItems.observe(items.length);
    metrics.jobDuration.observe(Number(process.hrtime.bigint() - started) / 1e9);
    return sealed;
  };
}
