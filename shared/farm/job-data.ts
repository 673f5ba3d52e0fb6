// A job's data as its stream entry holds it: written by the ingress (shard-queue.ts enqueue), read by the
// worker, the finished record and the operators' board. JSON of the JobData, except that an RPC job's
// items are positional arrays, [id, traceId, authorizationId, keyId, pubkey, method], not objects with
// those names: the names were a quarter of the metadata's bytes, and every byte of an entry costs Redis
// CPU three times (the enqueue's arguments, the stream, the worker's read). Data whose items are objects
// (written before this format, during an upgrade) reads the same.
import type { JobData, RpcJobItem } from './jobs.js';

type PackedRpcItem = [
  id: string,
  traceId: string,
  authorizationId: string,
  keyId: string,
  pubkey: string,
  method: RpcJobItem['method'],
];

/** The entry's `data` field of a job. */
export function encodeJobData(data: JobData): string {
  if (data.type !== 'rpc' || !Array.isArray(data.items)) return JSON.stringify(data);
  const items = new Array<PackedRpcItem>(data.items.length);
  for (let i = 0; i < items.length; i++) {
    const { id, traceId, authorizationId, keyId, pubkey, method } = data.items[i]!;
    items[i] = [id, traceId, authorizationId, keyId, pubkey, method];
  }
  return JSON.stringify({ ...data, items });
}

/**
 * The JobData of an entry's `data` field, RPC items as objects again. Throws when it is not JSON. What is
 * not a JobData is returned as parsed (the worker refuses it; the board shows it): an RPC item is unpacked
 * only from an array of six strings.
 */
export function decodeJobData(text: string): unknown {
  const data: unknown = JSON.parse(text);
  if (data === null || typeof data !== 'object') return data;
  const { type, items } = data as { type?: unknown; items?: unknown };
  if (type !== 'rpc' || !Array.isArray(items)) return data;
  return { ...data, items: items.map(unpackItem) };
}

function unpackItem(item: unknown): unknown {
  if (!Array.isArray(item) || item.length !== 6 || !item.every((v) => typeof v === 'string')) return item;
  const [id, traceId, authorizationId, keyId, pubkey, method] = item as PackedRpcItem;
  return { id, traceId, authorizationId, keyId, pubkey, method };
}
