// Key prefetch hints: the message is a key id and a shard, parsed strictly; a workers process loads a
// hinted key only for a shard it owns, a bounded number at a time, sharing the load with requests.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KeyNotFoundError } from '../../shared/custody/key-store.js';
import { MAX_HINT_BYTES, encodeKeyPrefetchHint, parseKeyPrefetchHint } from '../../shared/key-prefetch.js';
import { registry } from '../../shared/metrics.js';
import { KeyCache, type CachedKey } from '../../workers/key-cache.js';
import { KeyPrefetcher } from '../../workers/key-prefetch.js';
import type { KeyLoader } from '../../workers/key-loader.js';
import { createLogger } from '../../shared/logger.js';

const keyId = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
const fakeKey = (i: number): CachedKey => ({
  secretKey: new Uint8Array(32).fill((i % 250) + 1),
  pubkey: i.toString(16).padStart(64, '0'),
});
const hint = (i: number, shard = 0) => encodeKeyPrefetchHint({ keyId: keyId(i), shard });

/** A loader whose loads wait until released, counting them. */
class GatedLoader implements KeyLoader {
  calls: string[] = [];
  private gates: (() => void)[] = [];
  gated = true;
  missing = new Set<string>();

  async load(id: string) {
    this.calls.push(id);
    if (this.gated) await new Promise<void>((r) => this.gates.push(r));
    if (this.missing.has(id)) throw new KeyNotFoundError('key not found');
    const k = fakeKey(Number(id.slice(-12)));
    return { secretKey: new Uint8Array(k.secretKey), pubkey: k.pubkey };
  }

  release(): void {
    for (const open of this.gates.splice(0)) open();
  }
}

async function prefetchCount(outcome: string): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === 'keyfarm_key_prefetch_total');
  return Number(m?.values.find((v) => v.labels.outcome === outcome)?.value ?? 0);
}

function prefetcher(cache: KeyCache, loader: KeyLoader, owned: number[], maxInFlight = 2) {
  return new KeyPrefetcher({
    cache,
    keyLoader: loader,
    shardCount: 4,
    owns: (s) => owned.includes(s),
    maxInFlight,
    logger: createLogger({ level: 'silent' }),
  });
}

test('a hint is exactly a key id and an owned shard number; anything else is refused', () => {
  assert.deepEqual(parseKeyPrefetchHint(hint(1, 3), 4), { keyId: keyId(1), shard: 3 });
  const refused = [
    '',
    'not json',
    'null',
    '[]',
    '"x"',
    JSON.stringify({ keyId: keyId(1) }),
    JSON.stringify({ keyId: keyId(1), shard: 4 }),
    JSON.stringify({ keyId: keyId(1), shard: -1 }),
    JSON.stringify({ keyId: keyId(1), shard: 1.5 }),
    JSON.stringify({ keyId: keyId(1), shard: '1' }),
    JSON.stringify({ keyId: 'k|x', shard: 1 }),
    JSON.stringify({ keyId: 'ABCDEF00-0000-4000-8000-000000000001', shard: 1 }),
    JSON.stringify({ keyId: keyId(1), shard: 1, secretKey: 'ab'.repeat(32) }),
    JSON.stringify({ keyId: keyId(1), shard: 1, pad: 'x'.repeat(MAX_HINT_BYTES) }),
    `${hint(1)}${' '.repeat(MAX_HINT_BYTES)}`,
  ];
  for (const m of refused) assert.equal(parseKeyPrefetchHint(m, 4), undefined, m);
});

test('a hinted key is loaded once for an owned shard and found cached by the first request', async () => {
  const cache = new KeyCache(1 << 20);
  const loader = new GatedLoader();
  const p = prefetcher(cache, loader, [1]);
  const loaded = await prefetchCount('loaded');
  const pending = p.hint(hint(5, 1));
  assert.equal(p.running, 1);
  // A request arriving while the prefetch runs joins its load instead of starting another.
  const request = cache.getKey(keyId(5), (id) => loader.load(id));
  loader.release();
  assert.equal(await pending, 'loaded');
  assert.equal((await request).pubkey, fakeKey(5).pubkey);
  assert.deepEqual(loader.calls, [keyId(5)]);
  assert.equal(p.running, 0);
  assert.equal(await prefetchCount('loaded'), loaded + 1);
  // Hinted again while cached: nothing loads.
  assert.equal(await p.hint(hint(5, 1)), 'cached');
  assert.equal(loader.calls.length, 1);
});

test('hints for shards owned elsewhere, and malformed ones, load nothing', async () => {
  const cache = new KeyCache(1 << 20);
  const loader = new GatedLoader();
  const p = prefetcher(cache, loader, [1]);
  assert.equal(await p.hint(hint(6, 2)), 'not_owned');
  assert.equal(await p.hint('{"keyId":"../../etc","shard":1}'), 'invalid');
  assert.equal(loader.calls.length, 0);
  assert.equal(cache.size.keys, 0);
});

test('a flood of hints runs at most maxInFlight loads; the rest are dropped', async () => {
  const cache = new KeyCache(1 << 20);
  const loader = new GatedLoader();
  const p = prefetcher(cache, loader, [0], 3);
  const outcomes = Array.from({ length: 200 }, (_, i) => p.hint(hint(100 + i)));
  assert.equal(p.running, 3);
  assert.equal(loader.calls.length, 3);
  loader.release();
  const counted: Record<string, number> = {};
  for (const o of await Promise.all(outcomes)) counted[o] = (counted[o] ?? 0) + 1;
  assert.deepEqual(counted, { loaded: 3, busy: 197 });
  assert.equal(cache.size.keys, 3);
  assert.equal(p.running, 0);
});

test('maxInFlight 0 turns prefetch off', async () => {
  const cache = new KeyCache(1 << 20);
  const loader = new GatedLoader();
  assert.equal(await prefetcher(cache, loader, [0], 0).hint(hint(1)), 'busy');
  assert.equal(loader.calls.length, 0);
});

test('a failed prefetch caches nothing and frees its slot', async () => {
  const cache = new KeyCache(1 << 20);
  const loader = new GatedLoader();
  loader.gated = false;
  loader.missing.add(keyId(9));
  const p = prefetcher(cache, loader, [0], 1);
  assert.equal(await p.hint(hint(9)), 'not_found');
  assert.equal(cache.peekKey(keyId(9)), undefined);
  assert.equal(p.running, 0);
  assert.equal(await p.hint(hint(10)), 'loaded');
});

test('a key evicted while its prefetch runs does not enter the cache', async () => {
  const cache = new KeyCache(1 << 20);
  const loader = new GatedLoader();
  const p = prefetcher(cache, loader, [0]);
  const pending = p.hint(hint(11));
  cache.evictKey(keyId(11)); // the key changed or its owner was deleted meanwhile
  loader.release();
  await pending;
  assert.equal(cache.peekKey(keyId(11)), undefined);
});
