// Plans one HTTP RPC job (a micro-batch of requests for one shard) on the job skeleton (shard-job.ts):
// opens the sealed calls, gets each distinct key once, runs all of the job's crypto in ONE round, and
// seals the results for the api process that waits for them. Calls arrive sealed and results leave
// sealed (shared/farm/jobs.ts): open only in this memory.
import type { ItemResult, RpcItem, RpcJobData, SealedReplyMessage } from '../shared/farm/jobs.js';
import type { PayloadSealer } from '../shared/farm/payload-seal.js';
import { openRpcJob, sealReply } from '../shared/farm/rpc-sealing.js';
import type { NostrEvent } from '../shared/nostr/types.js';
import type { KeyOp } from './crypto/types.js';
import { runShardJob, schemeOf, type KeyCall, type ShardJobDeps } from './shard-job.js';

export interface RpcJobDeps extends ShardJobDeps {
  /** Opens the jobs' calls and seals their results: the farm payload key. */
  sealer: PayloadSealer;
}

export type RpcProcessor = (jobId: string, data: RpcJobData) => Promise<SealedReplyMessage>;

const fail = (id: string, status: number, error: string): ItemResult => ({ id, ok: false, status, error });

const needsKey = (item: RpcItem): item is RpcItem & { call: KeyCall } =>
  item.call.method !== 'ping' && item.call.method !== 'get_public_key';

export function createRpcProcessor(deps: RpcJobDeps): RpcProcessor {
  const { activity, logger, sealer } = deps;

  return (jobId, data) =>
    runShardJob(
      deps,
      { jobId, items: data.items.length },
      async (job) => {
        let items: RpcItem[];
        try {
          items = openRpcJob(sealer, jobId, data);
        } catch (err) {
          // Altered in Redis, moved from another job, or sealed under another farm's key: nothing runs.
          logger.error(
            { jobId, traceIds: data.items.map((i) => i.traceId), err: (err as Error).message },
            'the calls of an rpc job could not be opened',
          );
          return data.items.map((i) => fail(i.id, 500, 'calls could not be opened'));
        }
        const results: ItemResult[] = new Array(items.length);
        const ops: KeyOp[] = [];
        const opItem: number[] = [];
        for (const [i, item] of items.entries()) {
          if (item.call.method === 'ping') results[i] = { id: item.id, ok: true, result: 'pong' };
          else if (item.call.method === 'get_public_key') results[i] = { id: item.id, ok: true, result: item.pubkey };
          else void job.key(item.keyId, item.pubkey); // every distinct key starts loading at once
        }
        for (const [i, item] of items.entries()) {
          if (!needsKey(item)) continue;
          const k = await job.key(item.keyId, item.pubkey);
          if (!k.ok) {
            results[i] = fail(item.id, k.status, k.error);
            continue;
          }
          ops.push(job.keyOp(item.call, item.keyId, k.key));
          opItem.push(i);
        }

        const out = await job.run(ops);
        out.forEach((r, j) => {
          const i = opItem[j]!;
          const item = items[i]!;
          if (!r.ok) {
            results[i] = fail(item.id, 400, r.error);
            return;
          }
          results[i] = { id: item.id, ok: true, result: r.value };
          if ('peer' in item.call)
            job.rememberConvKey(item.keyId, item.call.peer, schemeOf(item.call.method), r.convKey);
        });

        const door = data.door ?? 'http';
        const debug = logger.isLevelEnabled('debug'); // no log object per item when it would be dropped
        return items.map((item, i) => {
          const r = results[i] ?? fail(item.id, 500, 'no result');
          if (r.ok) {
            const signed = item.call.method === 'sign_event' ? (r.result as NostrEvent) : undefined;
            activity.record({
              authorizationId: item.authorizationId,
              method: item.call.method,
              kind: signed?.kind,
              eventId: signed?.id,
              door,
            });
          }
          if (debug)
            logger.debug(
              { traceId: item.traceId, jobId, method: item.call.method, status: r.ok ? 200 : r.status },
              'rpc item done',
            );
          return r;
        });
      },
      (results) => sealReply(sealer, jobId, results),
    );
}
