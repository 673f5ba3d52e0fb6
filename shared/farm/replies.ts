// The reply channel between a worker and the ingress process waiting for a job's answers: one channel per
// ingress process (names.replyChannel(instanceId)). Both ends go through these two functions; a reply is a
// direct message (shared/pubsub.ts): sharded pub/sub on a Redis Cluster, so it costs one shard.
import type { RedisClient } from '../redis.js';
import { publishDirect, subscribeDirect } from '../pubsub.js';
import type { ShardNames } from '../shard.js';
import type { ReplyMessage, SealedReplyMessage } from './jobs.js';

/** Sends a job's reply to the ingress process `replyTo`. */
export async function publishReply(
  publisher: RedisClient,
  names: ShardNames,
  replyTo: string,
  reply: ReplyMessage | SealedReplyMessage,
): Promise<void> {
  await publishDirect(publisher, names.replyChannel(replyTo), JSON.stringify(reply));
}

/**
 * Calls `onReply` with each reply sent to this process; resolves once subscribed. The subscriber
 * connection may carry other channels: only this one's messages reach `onReply`.
 */
export async function subscribeReplies(
  subscriber: RedisClient,
  names: ShardNames,
  instanceId: string,
  onReply: (message: string) => void,
): Promise<void> {
  await subscribeDirect(subscriber, names.replyChannel(instanceId), onReply);
}
