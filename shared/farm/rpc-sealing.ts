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
  const calls: SealedCall[] = new Array(items.length);
  const jobItems: RpcJobItem[] = new Array(items.length);
  // Built field by field: an object rest and spread per item cost more than the rest of the job's bookkeeping.
  for (let i = 0; i < items.length; i++) {
    const { id, traceId, authorizationId, keyId, pubkey, call } = items[i]!;
    calls[i] = { id, call };
    jobItems[i] = { id, traceId, authorizationId, keyId, pubkey, method: call.method };
  }
  return { type: 'rpc', replyTo, door, items: jobItems, calls: sealer.seal(calls, callsAad(jobId)) };
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
  const opened: RpcItem[] = new Array(items.length);
  for (let i = 0; i < items.length; i++) {
    const { id, traceId, authorizationId, keyId, pubkey, method } = items[i]!;
    const sealed = calls[i];
    if (sealed?.id !== id || sealed.call?.method !== method)
      throw new PayloadSealError("sealed calls do not match the job's items");
    opened[i] = { id, traceId, authorizationId, keyId, pubkey, call: sealed.call };
  }
  return opened;
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
