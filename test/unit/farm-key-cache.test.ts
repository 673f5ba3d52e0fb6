import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { CONV_ENTRY_OVERHEAD, KEY_ENTRY_OVERHEAD, KeyCache, type CachedKey } from '../../workers/key-cache.js';
import { registry } from '../../shared/metrics.js';
import { cryptoBackend, useCryptoBackend } from '../../shared/nostr/crypto-backend.js';
import { KEYPAIR_BYTES } from '../../shared/nostr/secp256k1-native.js';
import { getPublicKeyHex } from '../../shared/nostr/keys.js';
import { bytesToHex, hexToBytes } from '../../shared/nostr/hex.js';

const keyId = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
const pubkeyOf = (i: number) => i.toString(16).padStart(64, '0');
const fakeKey = (i: number): CachedKey => ({ secretKey: new Uint8Array(32).fill((i % 250) + 1), pubkey: pubkeyOf(i) });
const loader =
  (calls: string[] = []) =>
  async (id: string) => {
    calls.push(id);
    return fakeKey(Number(id.slice(-12)));
  };

async function metricValue(name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  const v = m?.values.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return Number(v?.value ?? 0);
}

test('stays within its byte budget, evicting least recently used first', async () => {
  const perKey = KEY_ENTRY_OVERHEAD + 200;
  const cache = new KeyCache(perKey * 10);
  const load = loader();
  for (let i = 0; i < 10; i++) await cache.getKey(keyId(i), load);
  assert.ok(cache.bytes <= cache.maxBytes);
  const held = cache.size.keys;
  assert.ok(held >= 5 && held <= 10, `held ${held}`);
  await cache.getKey(keyId(0), load); // 0 becomes the most recent
  for (let i = 10; i < 30; i++) {
    await cache.getKey(keyId(i), load);
    assert.ok(cache.bytes <= cache.maxBytes, `over budget at ${i}: ${cache.bytes}`);
  }
  assert.equal(cache.peekKey(keyId(1)), undefined, 'old entries are gone');
  assert.ok(cache.peekKey(keyId(29)), 'the newest entry is held');
  assert.equal(await metricValue('keyfarm_cache_bytes'), cache.bytes);
  assert.equal(await metricValue('keyfarm_cache_size', { cache: 'key' }), cache.size.keys);
});

test('zeroes secret and conversation keys when they leave the cache', async () => {
  const probe = new KeyCache(1 << 20);
  await probe.getKey(keyId(0), loader());
  const cache = new KeyCache(probe.bytes * 3);
  const first = await cache.getKey(keyId(1), loader());
  assert.ok(first.secretKey.some((b) => b !== 0));
  for (let i = 2; i < 10; i++) await cache.getKey(keyId(i), loader());
  assert.equal(cache.peekKey(keyId(1)), undefined);
  assert.ok(
    first.secretKey.every((b) => b === 0),
    'evicted secret key is zeroed',
  );

  const big = new KeyCache(1 << 20);
  const k = await big.getKey(keyId(7), loader());
  const conv = new Uint8Array(32).fill(9);
  big.setConvKey(keyId(7), pubkeyOf(99), 'nip44', conv);
  assert.equal(big.getConvKey(keyId(7), pubkeyOf(99), 'nip44'), conv);
  assert.equal(big.getConvKey(keyId(7), pubkeyOf(99), 'nip04'), undefined, 'schemes are apart');
  big.evictKey(keyId(7));
  assert.equal(big.peekKey(keyId(7)), undefined);
  assert.equal(big.getConvKey(keyId(7), pubkeyOf(99), 'nip44'), undefined, 'conversation keys go with their key');
  assert.ok(k.secretKey.every((b) => b === 0) && conv.every((b) => b === 0));
  assert.equal(big.bytes, 0);
  // The private index of conversation keys by key id keeps no empty set behind (one per key ever seen).
  assert.equal((big as unknown as { convByKey: Map<string, unknown> }).convByKey.size, 0);

  const c2 = new KeyCache(1 << 20);
  const k2 = await c2.getKey(keyId(8), loader());
  c2.clear();
  assert.ok(k2.secretKey.every((b) => b === 0));
  assert.deepEqual(c2.size, { keys: 0, convKeys: 0 });
});

test('counts hits and misses, and accounts conversation keys in the budget', async () => {
  const cache = new KeyCache(1 << 20);
  const hits = await metricValue('keyfarm_cache_hits_total', { cache: 'key' });
  const misses = await metricValue('keyfarm_cache_misses_total', { cache: 'key' });
  await cache.getKey(keyId(1), loader());
  await cache.getKey(keyId(1), loader());
  await cache.getKey(keyId(1), loader());
  assert.equal(await metricValue('keyfarm_cache_hits_total', { cache: 'key' }), hits + 2);
  assert.equal(await metricValue('keyfarm_cache_misses_total', { cache: 'key' }), misses + 1);
  const before = cache.bytes;
  cache.setConvKey(keyId(1), pubkeyOf(5), 'nip04', new Uint8Array(32));
  assert.ok(cache.bytes - before >= CONV_ENTRY_OVERHEAD + 32);
  cache.setConvKey(keyId(1), pubkeyOf(5), 'nip04', new Uint8Array(32));
  assert.equal(cache.size.convKeys, 1, 'replacing does not double count');
});

test('loads a cold key once for concurrent requests, and not into the cache if evicted meanwhile', async () => {
  const cache = new KeyCache(1 << 20);
  const calls: string[] = [];
  const slow = async (id: string) => {
    calls.push(id);
    await sleep(20);
    return fakeKey(3);
  };
  const [a, b, c] = await Promise.all([
    cache.getKey(keyId(3), slow),
    cache.getKey(keyId(3), slow),
    cache.getKey(keyId(3), slow),
  ]);
  assert.equal(calls.length, 1);
  assert.equal(a, b);
  assert.equal(b, c);

  const pending = cache.getKey(keyId(4), slow);
  cache.evictKey(keyId(4));
  const overtaken = await pending;
  assert.equal(cache.peekKey(keyId(4)), undefined, 'a key evicted during its load is not cached');
  // The request that started the load still gets the key it asked for, to use once.
  assert.equal(overtaken.pubkey, pubkeyOf(3));
  assert.ok(overtaken.secretKey instanceof Uint8Array && overtaken.secretKey.some((x) => x !== 0));
  await cache.getKey(keyId(4), slow);
  assert.ok(cache.peekKey(keyId(4)));

  const failing = async () => {
    throw new Error('db down');
  };
  await assert.rejects(cache.getKey(keyId(5), failing), /db down/);
  assert.equal(cache.peekKey(keyId(5)), undefined);
  await cache.getKey(keyId(5), slow); // a failed load does not stick
  assert.ok(cache.peekKey(keyId(5)));
});

test('a secret loaded as a view on a larger buffer becomes key material of the backend, and the view is zeroed', async () => {
  const cache = new KeyCache(1 << 20);
  const big = Buffer.alloc(100, 0xee);
  const view = big.subarray(10, 42);
  const pubkey = getPublicKeyHex(new Uint8Array(32).fill(0xee));
  const key = await cache.getKey(keyId(9), async () => ({ secretKey: view, pubkey }));
  assert.notEqual(key.secretKey.buffer, big.buffer);
  assert.equal(bytesToHex(cryptoBackend().getPublicKey(key.secretKey)), pubkey, "the cached material is the secret's");
  assert.equal(key.pubkey, pubkey);
  assert.ok(
    view.every((b) => b === 0),
    'the loader buffer is wiped',
  );
  assert.equal(cache.peekKey(keyId(9)), key);
});

for (const name of ['native', 'wasm'] as const) {
  test(`${name}: the cache holds the backend's key material (a keypair on native), within 300 bytes a key`, async () => {
    useCryptoBackend(name);
    try {
      const sk = new Uint8Array(32).fill(0x42);
      const pubkey = getPublicKeyHex(sk);
      const cache = new KeyCache(1 << 20);
      const key = await cache.getKey(keyId(1), async () => ({ secretKey: Uint8Array.from(sk), pubkey }));
      assert.equal(key.secretKey.length, name === 'native' ? KEYPAIR_BYTES : 32);
      const msg = new Uint8Array(32).fill(7);
      const sig = cryptoBackend().signWithKey(msg, key.secretKey, hexToBytes(pubkey));
      assert.ok(cryptoBackend().verify(sig, msg, hexToBytes(pubkey)));
      assert.ok(cache.bytes <= 300, `${cache.bytes} bytes for one key`);
      const held = new Uint8Array(key.secretKey);
      cache.evictKey(keyId(1));
      assert.ok(
        key.secretKey.every((b) => b === 0),
        'an evicted entry answers with zeros',
      );
      assert.throws(
        () => cryptoBackend().signWithKey(msg, key.secretKey, hexToBytes(pubkey)),
        /invalid key material|out of range/,
      );
      held.fill(0);
    } finally {
      useCryptoBackend('auto');
    }
  });
}

test('a slot freed by an eviction is wiped, and the next key reuses it without seeing the old one', async () => {
  const cache = new KeyCache(1 << 20);
  const a = await cache.getKey(keyId(1), loader());
  const aMaterial = new Uint8Array(a.secretKey);
  cache.evictKey(keyId(1));
  const b = await cache.getKey(keyId(2), loader());
  assert.notDeepEqual(new Uint8Array(b.secretKey), aMaterial);
  assert.ok(
    a.secretKey.every((x) => x === 0),
    'the old entry does not show the new key',
  );
  assert.equal(a.pubkey, '');
  assert.equal(b.pubkey, pubkeyOf(2));
});

test('an eviction with no load running does not stop the next load from being cached', async () => {
  const cache = new KeyCache(1 << 20);
  const calls: string[] = [];
  cache.evictKey(keyId(1));
  await cache.getKey(keyId(1), loader(calls));
  await cache.getKey(keyId(1), loader(calls));
  assert.deepEqual(calls, [keyId(1)]);
});

test('an entry that fills the budget exactly is kept', async () => {
  const probe = new KeyCache(1 << 20);
  await probe.getKey(keyId(1), loader());
  const cache = new KeyCache(probe.bytes);
  await cache.getKey(keyId(1), loader());
  assert.ok(cache.peekKey(keyId(1)), 'evicted although within budget');
  assert.equal(cache.bytes, cache.maxBytes);
});

test('evicting a key drops every conversation key of it, also after one was replaced', () => {
  const cache = new KeyCache(1 << 20);
  const a = new Uint8Array(32).fill(1);
  const b = new Uint8Array(32).fill(2);
  cache.setConvKey(keyId(1), 'peer-a', 'nip44', a);
  cache.setConvKey(keyId(1), 'peer-b', 'nip44', b);
  cache.setConvKey(keyId(1), 'peer-a', 'nip44', new Uint8Array(32).fill(3));
  cache.setConvKey(keyId(2), 'peer-a', 'nip44', new Uint8Array(32).fill(4));
  cache.evictKey(keyId(1));
  assert.equal(cache.getConvKey(keyId(1), 'peer-a', 'nip44'), undefined);
  assert.equal(cache.getConvKey(keyId(1), 'peer-b', 'nip44'), undefined, 'a conversation key outlived its key');
  assert.ok(
    b.every((x) => x === 0),
    'and was not zeroed',
  );
  assert.ok(cache.getConvKey(keyId(2), 'peer-a', 'nip44'), 'another key keeps its own');
  assert.deepEqual(cache.size, { keys: 0, convKeys: 1 });
});
