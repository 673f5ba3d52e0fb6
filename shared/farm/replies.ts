// The reply channel between a worker and the ingress process waiting for a job's answers: one channel per
// ingress process (names.replyChannel(instanceId)). Both ends go through these two functions, so how a
// reply travels (plain or sharded pub/sub) is decided here alone.
import type { Redis } from 'ioredis';
import type { ShardNames } from '../shard.js';
import type { ReplyMessage, SealedReplyMessage } from './jobs.js';

/** Sends a job's reply to the ingress process `replyTo`. */
export async function publishReply(publisher: Redis, names: ShardNames, replyTo: string, reply: ReplyMessage | SealedReplyMessage): Promise<void> {
  await publisher.publish(names.replyChannel(replyTo), JSON.stringify(reply));
}

/**
 * Calls `onReply` with each reply sent to this process; resolves once subscribed. The subscriber
 * connection may carry other channels: only this one's messages reach `onReply`.
 */
export async function subscribeReplies(subscriber: Redis, names: ShardNames, instanceId: string, onReply: (message: string) => void): Promise<void> {
  const channel = names.replyChannel(instanceId);
  subscriber.on('message', (from: string, message: string) => {
    if (from === channel) onReply(message);
  });
  await subscriber.subscribe(channel);
}
