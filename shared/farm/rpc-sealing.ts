// The RPC job format's sealing, one AES-GCM operation per job each way (a job carries up to a few hundred
// requests; a cipher per request would cost more than the rest of the job's bookkeeping). The api seals
// the job's calls, the worker opens them; the worker seals the results, the api opens them. Each AAD
// names the job, and the sealed call list names each item, so nothing sealed moves to another job or item.
import type { ItemResult, ReplyMessage, RpcCall, RpcItem, RpcJobData, RpcJobItem, SealedReplyMessage } from './jobs.js';
import { PayloadSealError, type PayloadSealer } from './payload-seal.js';

const callsAad = (jobId: string) => `keyfarm:v1:rpc-calls:${jobId}`;
const resultsAad = (jobId: string) => `keyfarm:v1:rpc-results:${jobId}`;

interface SealedCall {
  id: string;
  call: RpcCall;
}

export function sealRpcJob(
  sealer: PayloadSealer,
  jobId: string,
  replyTo: string,
  door: 'http' | 'nip46',
  items: RpcItem[],
): RpcJobData {
  const calls: SealedCall[] = items.map((i) => ({ id: i.id, call: i.call }));
  return {
    type: 'rpc',
    replyTo,
    door,
    items: items.map(({ call, ...meta }) => ({ ...meta, method: call.method })),
    calls: sealer.seal(calls, callsAad(jobId)),
  };
}

/**
 * The job's items with their calls, in order. Throws PayloadSealError when the calls do not open for this
 * job, or do not match the items (count, ids, methods).
 */
export function openRpcJob(sealer: PayloadSealer, jobId: string, data: RpcJobData): RpcItem[] {
  const calls = sealer.open<SealedCall[]>(data.calls, callsAad(jobId));
  const items: RpcJobItem[] = data.items;
  if (!Array.isArray(calls) || calls.length !== items.length)
    throw new PayloadSealError("sealed calls do not match the job's items");
  return items.map(({ method, ...meta }, i) => {
    const sealed = calls[i];
    if (sealed?.id !== meta.id || sealed.call?.method !== method)
      throw new PayloadSealError("sealed calls do not match the job's items");
    return { ...meta, call: sealed.call };
  });
}

export function sealReply(sealer: PayloadSealer, jobId: string, results: ItemResult[]): SealedReplyMessage {
  return { jobId, sealedResults: sealer.seal(results, resultsAad(jobId)) };
}

/**
 * The results in a reply to an RPC job. A sealed reply opens whole (or throws PayloadSealError); an
 * unsealed one (a job that failed for good) yields only its errors: an answer always comes sealed.
 */
export function openReply(sealer: PayloadSealer, reply: Partial<SealedReplyMessage & ReplyMessage>): ItemResult[] {
  if (typeof reply.jobId !== 'string') throw new PayloadSealError('reply without a job id');
  if (reply.sealedResults !== undefined) {
    const results = sealer.open<ItemResult[]>(reply.sealedResults, resultsAad(reply.jobId));
    if (!Array.isArray(results)) throw new PayloadSealError('sealed results are not a list');
    return results;
  }
  return Array.isArray(reply.results) ? reply.results.filter((r) => r && r.ok === false) : [];
}
