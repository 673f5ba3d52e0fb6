// The reply channel between a worker and the ingress process waiting for a job's answers. A reply is a
// direct message (shared/pubsub.ts): the job's finished record (shard-queue.ts FinishedJob), the answer in
// its `reply`, published by the shard queue's completion script in the same step as it keeps the record
// (shard-queue.lua), or by publishReply when that script could not run. replyOf reads either form.
// - On a single Redis: one channel per ingress process (names.replyChannel(instanceId)).
// - On a Redis Cluster: one shard channel per ingress process and shard (names.shardReplyChannel), in
//   the shard's slot, so the script's SPUBLISH costs the shard's own node and nothing else.
import type { RedisClient } from '../redis.js';
import { isCluster } from '../redis.js';
import { publishDirect, subscribeDirect } from '../pubsub.js';
import type { ShardNames } from '../shard.js';

/** The channel replies to jobs of `shard` for the ingress process `instanceId` go on. */
export function replyChannel(redis: RedisClient, names: ShardNames, instanceId: string, shard: number): string {
  return isCluster(redis) ? names.shardReplyChannel(instanceId, shard) : names.replyChannel(instanceId);
}

/** Sends a job's finished record (its reply in it) to the ingress process `replyTo` by a command of its own. */
export async function publishReply(
  publisher: RedisClient,
  names: ShardNames,
  replyTo: string,
  shard: number,
  record: string,
): Promise<void> {
  await publishDirect(publisher, replyChannel(publisher, names, replyTo, shard), record);
}

/**
 * The reply a message on a reply channel carries: a finished record's `reply`, or the message itself when
 * it is a bare reply (a worker of an earlier version published those).
 */
export function replyOf(message: unknown): unknown {
  if (message === null || typeof message !== 'object' || 'jobId' in message) return message;
  return (message as { reply?: unknown }).reply;
}

/**
 * Calls `onReply` with each reply sent to this process, for jobs of shards 0..shardCount-1; resolves once
 * subscribed. The subscriber connection may carry other channels: only these ones' messages reach `onReply`.
 */
export async function subscribeReplies(
  subscriber: RedisClient,
  names: ShardNames,
  instanceId: string,
  shardCount: number,
  onReply: (message: string) => void,
): Promise<void> {
  const channels = new Set<string>();
  for (let shard = 0; shard < shardCount; shard++) channels.add(replyChannel(subscriber, names, instanceId, shard));
  await subscribeDirect(subscriber, [...channels], onReply);
}
