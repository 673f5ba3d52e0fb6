// The RPC job format's sealing: an item's call is sealed by the api when it makes the job, opened by the
// worker; an ok result is sealed by the worker, opened by the api. Each AAD names the job and the item.
import type { ItemResult, RpcCall, RpcItem, SealedRpcItem } from './jobs.js';
import { PayloadSealError, type PayloadSealer } from './payload-seal.js';

const callAad = (jobId: string, itemId: string) => `keyfarm:v1:rpc-call:${jobId}:${itemId}`;
const resultAad = (jobId: string, itemId: string) => `keyfarm:v1:rpc-result:${jobId}:${itemId}`;

export function sealRpcItem(sealer: PayloadSealer, jobId: string, item: RpcItem): SealedRpcItem {
  const { call, ...meta } = item;
  return { ...meta, method: call.method, call: sealer.seal(call, callAad(jobId, item.id)) };
}

/** The item with its call opened; throws PayloadSealError when the call does not open or is not the named method. */
export function openRpcItem(sealer: PayloadSealer, jobId: string, sealed: SealedRpcItem): RpcItem {
  const { method, call: sealedCall, ...meta } = sealed;
  const call = sealer.open<RpcCall>(sealedCall, callAad(jobId, sealed.id));
  if (call?.method !== method) throw new PayloadSealError('sealed call is not the method the item names');
  return { ...meta, call };
}

export function sealResult(sealer: PayloadSealer, jobId: string, r: ItemResult): ItemResult {
  return r.ok ? { ...r, result: sealer.seal(r.result, resultAad(jobId, r.id)) } : r;
}

/** The result with its value opened; throws PayloadSealError when it does not open. */
export function openResult(sealer: PayloadSealer, jobId: string, r: ItemResult): ItemResult {
  return r.ok ? { ...r, result: sealer.open(r.result, resultAad(jobId, r.id)) } : r;
}
