// Where a user's work goes: a stable shard of the user's pubkey, and the Redis names of that shard.
// Every key of one shard carries the same hash tag, so in Redis Cluster a shard lives on one node.
import { createHash } from 'node:crypto';

/** Stable across processes, releases and machines: the first 4 bytes of sha256(pubkey hex), mod count. */
export function shardOf(userPubkey: string, shardCount: number): number {
  return createHash('sha256').update(userPubkey.toLowerCase()).digest().readUInt32BE(0) % shardCount;
}

/** CRC16 (XMODEM) of a string's UTF-8 bytes, mod 16384: the Redis Cluster slot of a hash tag. */
export function clusterSlot(tag: string): number {
  let crc = 0;
  for (const byte of Buffer.from(tag)) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

const SLOTS = 16384;

/**
 * Hash tags for `count` shards spread evenly over a cluster's slots: shard N's tag hashes into the Nth of
 * `count` equal runs of slots. A cluster divides its slots into equal runs per master, so with a shard
 * count that is a multiple of the masters, each master holds as many shards (plain `shard-N` tags hash
 * where they will: 3 shards can leave a master with none, and evening that out took many small shards).
 */
export function spreadShardTags(count: number): string[] {
  return Array.from({ length: count }, (_, shard) => {
    for (let k = 0; ; k++) {
      const tag = `shard-${shard}.${k}`;
      if (Math.floor((clusterSlot(tag) * count) / SLOTS) === shard) return tag;
    }
  });
}

export interface ShardNamesOptions {
  /** On a Redis Cluster: the shard count, whose tags are spread evenly over the slots (spreadShardTags). */
  spreadOverSlots?: number;
}

export class ShardNames {
  private readonly tags: string[] | undefined;

  constructor(
    readonly prefix: string,
    opts: ShardNamesOptions = {},
  ) {
    this.tags = opts.spreadOverSlots ? spreadShardTags(opts.spreadOverSlots) : undefined;
  }

  /** The name of a shard's queue (what Bull Board lists). */
  queue(shard: number): string {
    return `shard-${shard}`;
  }

  /** The hash tag of a shard's keys: what Redis Cluster hashes them by. */
  tag(shard: number): string {
    return this.tags?.[shard] ?? `shard-${shard}`;
  }

  /** The key prefix of a shard: its hash tag puts every key of the shard in one cluster slot. */
  queuePrefix(shard: number): string {
    return `${this.prefix}:{${this.tag(shard)}}`;
  }

  /** The shard's stream of jobs waiting or running (shared/farm/shard-queue.lua). */
  jobs(shard: number): string {
    return `${this.queuePrefix(shard)}:jobs`;
  }

  /** The shard's meter: items (requests, not jobs) held, and the drain rate (what backpressure reads). */
  meter(shard: number): string {
    return `${this.queuePrefix(shard)}:meter`;
  }

  /** A finished job's record (its data and reply), kept a while for the ingress's fallback read. */
  job(shard: number, jobId: string): string {
    return `${this.queuePrefix(shard)}:job:${jobId}`;
  }

  /** Marks a NIP-46 job id as added, so the same id is never run twice. */
  dedupe(shard: number, jobId: string): string {
    return `${this.queuePrefix(shard)}:dedupe:${jobId}`;
  }

  /** Which worker owns the shard, with a TTL. */
  lease(shard: number): string {
    return `${this.queuePrefix(shard)}:lease`;
  }

  /** The farm's shard count, recorded by its first process (shared/farm/shard-count.ts). */
  shardCount(): string {
    return `${this.prefix}:shard-count`;
  }

  /** Live worker members (a sorted set scored by expiry time). */
  members(): string {
    return `${this.prefix}:workers`;
  }

  /** Pub/sub channel on which a worker publishes replies for one api process (on a single Redis). */
  replyChannel(instanceId: string): string {
    return `${this.prefix}:reply:${instanceId}`;
  }

  /**
   * Shard channel on which a worker publishes the replies of one shard's jobs for one api process (on a
   * Redis Cluster): in the shard's slot, so the completion script publishes it (SPUBLISH) on the shard's node.
   */
  shardReplyChannel(instanceId: string, shard: number): string {
    return `${this.queuePrefix(shard)}:reply:${instanceId}`;
  }

  /** Pub/sub channel announcing revocations and key changes, evicted from every cache at once. */
  evictChannel(): string {
    return `${this.prefix}:evict`;
  }

  /** Pub/sub channel of key prefetch hints (shared/key-prefetch.ts), heard by every workers process. */
  keyPrefetchChannel(): string {
    return `${this.prefix}:key-prefetch`;
  }
}
