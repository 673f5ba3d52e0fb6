// Revocations and key changes are broadcast on one pub/sub channel; every api and worker process evicts
// what the message names from its caches at once. Every subscriber has it before the publish returns
// (publishBroadcast), so a request that follows a revocation's answer finds no stale cache entry.
import { publishBroadcast } from './pubsub.js';
import type { RedisClient } from './redis.js';

export type Eviction =
  | { type: 'authorization'; authorizationId: string }
  | { type: 'key'; keyId: string }
  | { type: 'all' };

export async function publishEviction(redis: RedisClient, channel: string, e: Eviction): Promise<void> {
  await publishBroadcast(redis, channel, JSON.stringify(e));
}

export function parseEviction(message: string): Eviction | undefined {
  try {
    const e = JSON.parse(message) as Eviction;
    return e && typeof e.type === 'string' ? e : undefined;
  } catch {
    return undefined;
  }
}
