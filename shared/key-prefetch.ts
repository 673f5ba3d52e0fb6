// Key prefetch hints: when a session starts (an access token is issued, or an api process first sees a
// token), the api tells the worker that owns the user's shard which key the next requests will need, so
// it loads the key (row, DEK unwrap, decrypt) before the first request arrives instead of during it.
// A hint carries the key's id and its shard, never key material; the key id comes from the database
// (the token's authorization), never from the request, so a user can only warm keys they sign with.
// Workers act on a hint only for a shard they own, a bounded number at a time (workers/key-prefetch.ts).
import type { RedisClient } from './redis.js';

export interface KeyPrefetchHint {
  keyId: string;
  shard: number;
}

/** Hints are far smaller: anything longer is not one and is not parsed. */
export const MAX_HINT_BYTES = 128;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function encodeKeyPrefetchHint(hint: KeyPrefetchHint): string {
  return JSON.stringify({ keyId: hint.keyId, shard: hint.shard });
}

/** The hint in a message, or undefined unless it is exactly { keyId: a UUID, shard: 0..shardCount-1 }. */
export function parseKeyPrefetchHint(message: string, shardCount: number): KeyPrefetchHint | undefined {
  if (message.length > MAX_HINT_BYTES) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(message);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const { keyId, shard, ...rest } = value as Record<string, unknown>;
  if (Object.keys(rest).length > 0) return undefined;
  if (typeof keyId !== 'string' || !UUID.test(keyId)) return undefined;
  if (typeof shard !== 'number' || !Number.isInteger(shard) || shard < 0 || shard >= shardCount) return undefined;
  return { keyId, shard };
}

export async function publishKeyPrefetch(redis: RedisClient, channel: string, hint: KeyPrefetchHint): Promise<void> {
  await redis.publish(channel, encodeKeyPrefetchHint(hint));
}
