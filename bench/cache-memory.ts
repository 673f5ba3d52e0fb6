// Bytes of memory per key the decrypted-key cache really holds (heap and off-heap, after a full GC), against
// what it accounts for (its byte budget). Run: node --expose-gc dist/bench/cache-memory.js [keys] [backend]
import { randomUUID } from 'node:crypto';
import { KeyCache } from '../workers/key-cache.js';
import { generateSecretKey, getPublicKeyHex } from '../shared/nostr/keys.js';
import { useCryptoBackend, type CryptoBackendChoice } from '../shared/nostr/crypto-backend.js';

export interface CacheMemory {
  backend: string;
  keys: number;
  /** Measured: heap plus external memory per key. */
  bytesPerKey: number;
  /** What the cache counts per key against CACHE_MAX_BYTES. */
  accountedPerKey: number;
}

function used(): number {
  (globalThis as { gc?: () => void }).gc?.();
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  if (process.env.MEMDEBUG) console.log(m.heapUsed, m.external, m.arrayBuffers);
  return m.heapUsed + m.external;
}

export async function measureCacheMemory(keys: number): Promise<CacheMemory> {
  if (typeof (globalThis as { gc?: unknown }).gc !== 'function') throw new Error('run node with --expose-gc');
  const sk = generateSecretKey();
  const pubkeyBytes = Buffer.from(getPublicKeyHex(sk), 'hex');
  // Ids and secrets arrive from Postgres as fresh strings and buffers; the pubkey string is one per key too.
  const ids = Array.from({ length: keys }, () => randomUUID());
  let cache: KeyCache | undefined = new KeyCache(16 * 1024 * 1024 * 1024);
  for (const id of ids) {
    await cache.getKey(id, async () => ({ secretKey: Uint8Array.from(sk), pubkey: pubkeyBytes.toString('hex') }));
  }
  // Measured as full minus dropped, both after the start-up garbage is gone (a "before" taken first
  // counted some of it and came out lower than "after").
  const full = used();
  const accountedPerKey = Math.round(cache.bytes / keys);
  if (cache.size.keys !== keys) throw new Error('cache dropped keys while measuring');
  cache.clear();
  cache = undefined;
  const dropped = used();
  if (ids.length !== keys) throw new Error('unreachable'); // keeps ids alive past both measurements
  return { backend: '', keys, bytesPerKey: Math.round((full - dropped) / keys), accountedPerKey };
}

if (process.argv[1]?.endsWith('cache-memory.js')) {
  const keys = Number(process.argv[2] ?? 50_000);
  const choice = (process.argv[3] ?? 'auto') as CryptoBackendChoice;
  const { backend } = useCryptoBackend(choice);
  await measureCacheMemory(Math.min(keys, 5000)); // warm-up: code, slabs of the first size, metrics
  const r = await measureCacheMemory(keys);
  console.log(JSON.stringify({ ...r, backend: backend.name }));
}
