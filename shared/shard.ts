// Where a user's work goes: a stable shard of the user's pubkey, and the Redis names of that shard.
// Every key of one shard carries the same hash tag, so in Redis Cluster a shard lives on one node.
import { createHash } from 'node:crypto';

/** Stable across processes, releases and machines: the first 4 bytes of sha256(pubkey hex), mod count. */
export function shardOf(userPubkey: string, shardCount: number): number {
  return createHash('sha256').update(userPubkey.toLowerCase()).digest().readUInt32BE(0) % shardCount;
}

export class ShardNames {
  constructor(readonly prefix: string) {}

  /** BullMQ queue name of a shard (what Bull Board lists). */
  queue(shard: number): string {
    return `shard-${shard}`;
  }

  /** BullMQ prefix of a shard: its hash tag puts the queue's keys in one cluster slot. */
  queuePrefix(shard: number): string {
    return `${this.prefix}:{shard-${shard}}`;
  }

  /** Items (requests, not jobs) waiting or running in a shard: what backpressure counts. */
  items(shard: number): string {
    return `${this.queuePrefix(shard)}:items`;
  }

  /** Which worker owns the shard, with a TTL. */
  lease(shard: number): string {
    return `${this.queuePrefix(shard)}:lease`;
  }

  /** Live worker members (a sorted set scored by expiry time). */
  members(): string {
    return `${this.prefix}:workers`;
  }

  /** Pub/sub channel on which a worker publishes replies for one api process. */
  replyChannel(instanceId: string): string {
    return `${this.prefix}:reply:${instanceId}`;
  }

  /** Pub/sub channel announcing revocations and key changes, evicted from every cache at once. */
  evictChannel(): string {
    return `${this.prefix}:evict`;
  }
}
