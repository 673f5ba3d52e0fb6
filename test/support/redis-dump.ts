// Everything Redis holds under a key prefix, as text: for tests that prove some content never got there.
import type { RedisClient } from '../../shared/redis.js';
import { scanKeys } from './env.js';

export interface DumpedKey {
  key: string;
  type: string;
  /** The key's whole value: fields and values, members and scores, stream entries. */
  text: string;
}

async function readValue(redis: RedisClient, key: string, type: string): Promise<unknown> {
  switch (type) {
    case 'string':
      return redis.get(key);
    case 'hash':
      return redis.hgetall(key);
    case 'list':
      return redis.lrange(key, 0, -1);
    case 'set':
      return redis.smembers(key);
    case 'zset':
      return redis.zrange(key, 0, -1, 'WITHSCORES');
    case 'stream':
      return redis.xrange(key, '-', '+');
    case 'none':
      return null; // expired between SCAN and TYPE
    default:
      throw new Error(`dumpRedis: key ${key} has type ${type}, which this dump does not read`);
  }
}

/** Every key whose name starts with `prefix`, of every type, with its whole value. */
export async function dumpRedis(redis: RedisClient, prefix: string): Promise<DumpedKey[]> {
  const keys = await scanKeys(redis, `${prefix}*`);
  const dumped: DumpedKey[] = [];
  for (const key of keys.sort()) {
    const type = await redis.type(key);
    dumped.push({ key, type, text: JSON.stringify(await readValue(redis, key, type)) });
  }
  return dumped;
}

/**
 * The forms a marker string could take in stored text: itself, hex, and base64 / base64url at each of
 * the three byte alignments it could have inside a longer encoded value (inner characters only).
 */
export function markerForms(marker: string): string[] {
  const bytes = Buffer.from(marker, 'utf8');
  const forms = new Set([marker, bytes.toString('hex'), JSON.stringify(marker).slice(1, -1)]);
  for (let pad = 0; pad < 3; pad++) {
    const padded = Buffer.concat([Buffer.alloc(pad), bytes]);
    for (const encoding of ['base64', 'base64url'] as const) {
      const text = padded.toString(encoding).replace(/=+$/, '');
      // The first group (when it holds padding) and the last one (it depends on what follows) are dropped.
      forms.add(text.slice(pad === 0 ? 0 : 4, -4));
    }
  }
  return [...forms];
}

/** The forms of `marker` found in `text`. */
export function markersIn(text: string, marker: string): string[] {
  return markerForms(marker).filter((form) => text.includes(form));
}
