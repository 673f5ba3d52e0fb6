// The decrypted-key cache of a worker process: an LRU under a byte budget holding users' and bunkers'
// key material (by key id) and NIP-44/NIP-04 conversation keys (by key id, peer and scheme).
// Key material is what the crypto backend signs with (shared/nostr/crypto-backend.ts): a libsecp256k1
// keypair made once per key on the native backend, the secret itself on WASM. It lives in slots of a
// KeySlab, wiped when the entry leaves; conversation-key buffers are zeroed likewise. The cache owns what it
// holds: callers copy a key's secretKey before handing it anywhere (the crypto pool, a later await), and an
// entry that has left answers with zeros.
import { metrics } from '../shared/metrics.js';
import { cryptoBackend } from '../shared/nostr/crypto-backend.js';
import { KeySlab } from './key-slab.js';

export interface CachedKey {
  /** Key material of the process's crypto backend (or, from a loader, the 32-byte secret). */
  readonly secretKey: Uint8Array;
  readonly pubkey: string;
}

export type ConvScheme = 'nip44' | 'nip04';

/**
 * Heap cost of one key beyond its id string and slot (Map slot and entry object: 73 bytes measured), and of
 * one conversation key beyond its strings (Map slot, entry, the 32-byte Uint8Array and its ArrayBuffer, the
 * conversation-key index), measured on Node 20 x64 over 50k entries (bench/cache-memory.ts). A key comes
 * to 264 bytes with a native keypair (96 + 32 bytes of slot), 200 on WASM; 544 before the slab.
 */
export const KEY_ENTRY_OVERHEAD = 80;
export const CONV_ENTRY_OVERHEAD = 440;
/** V8 one-byte strings: a 16-byte header, then one byte per character, rounded to 8. */
const stringBytes = (s: string) => 16 + Math.ceil(s.length / 8) * 8;

const PUBKEY_BYTES = 32;

/**
 * A cached key; also what callers get, so it stops answering once it leaves the cache. Its slot holds the
 * key material then the 32-byte public key (a hex string per key would cost 80 bytes of heap).
 */
class KeyEntry implements CachedKey {
  constructor(
    private readonly slab: KeySlab,
    private slot: number,
    readonly bytes: number,
  ) {}

  get secretKey(): Uint8Array {
    const length = this.slab.slotBytes - PUBKEY_BYTES;
    return this.slot >= 0 ? this.slab.view(this.slot).subarray(0, length) : new Uint8Array(length);
  }

  get pubkey(): string {
    if (this.slot < 0) return '';
    const pub = this.slab.view(this.slot).subarray(this.slab.slotBytes - PUBKEY_BYTES);
    return Buffer.from(pub.buffer, pub.byteOffset, PUBKEY_BYTES).toString('hex');
  }

  release(): void {
    if (this.slot < 0) return;
    this.slab.release(this.slot);
    this.slot = -1;
  }
}

interface ConvEntry {
  keyId: string;
  convKey: Uint8Array;
  bytes: number;
}

type Entry = KeyEntry | ConvEntry;

// Key ids are UUIDs; a conversation slot always holds '|', so a key's slot can be its id itself.
const keySlot = (keyId: string) => (keyId.includes('|') ? `k|${keyId}` : keyId);
const convSlot = (keyId: string, peer: string, scheme: ConvScheme) => `c|${keyId}|${scheme}|${peer}`;

export class KeyCache {
  /** Insertion order is recency order: the first entry is the least recently used. */
  private readonly entries = new Map<string, Entry>();
  /** Conversation-key slots per key id, so evicting a key takes its conversation keys along. */
  private readonly convByKey = new Map<string, Set<string>>();
  private readonly loading = new Map<string, Promise<CachedKey>>();
  /** Key ids evicted while a load was running: that load's result must not enter the cache. */
  private readonly staleLoads = new Set<string>();
  /** Slabs by slot size (one per backend's key material length). */
  private readonly slabs = new Map<number, KeySlab>();
  private bytesHeld = 0;
  private keyCount = 0;
  private convCount = 0;

  constructor(readonly maxBytes: number) {
    if (!(maxBytes > 0)) throw new RangeError('KeyCache: maxBytes must be positive');
    this.report();
  }

  get bytes(): number {
    return this.bytesHeld;
  }

  get size(): { keys: number; convKeys: number } {
    return { keys: this.keyCount, convKeys: this.convCount };
  }

  /** A cached key, or undefined (no load, no metrics). */
  peekKey(keyId: string): CachedKey | undefined {
    const e = this.entries.get(keySlot(keyId));
    return e instanceof KeyEntry ? e : undefined;
  }

  /**
   * The key from the cache, or loaded with `load` on a miss. Concurrent misses for one key share one load.
   * The returned buffers belong to the cache: copy before use across an await.
   */
  async getKey(keyId: string, load: (keyId: string) => Promise<CachedKey>): Promise<CachedKey> {
    const slot = keySlot(keyId);
    const hit = this.entries.get(slot);
    if (hit instanceof KeyEntry) {
      this.touch(slot, hit);
      metrics.cacheHits.inc({ cache: 'key' });
      return hit;
    }
    metrics.cacheMisses.inc({ cache: 'key' });
    const running = this.loading.get(keyId);
    if (running) return running;
    const loaded = this.loadKey(keyId, load);
    this.loading.set(keyId, loaded);
    return loaded;
  }

  /**
   * Loads a key ahead of its first request (a prefetch hint, workers/key-prefetch.ts), sharing the load
   * with any request for it meanwhile. No hit or miss is counted and a cached key keeps its place in the
   * recency order. 'cached': it was cached; 'loading': a request is loading it; 'loaded': this loaded it.
   * A failed load rejects and caches nothing.
   */
  async prefetchKey(
    keyId: string,
    load: (keyId: string) => Promise<CachedKey>,
  ): Promise<'cached' | 'loading' | 'loaded'> {
    if (this.entries.get(keySlot(keyId)) instanceof KeyEntry) return 'cached';
    if (this.loading.has(keyId)) return 'loading';
    const loaded = this.loadKey(keyId, load);
    this.loading.set(keyId, loaded);
    await loaded;
    return 'loaded';
  }

  getConvKey(keyId: string, peer: string, scheme: ConvScheme): Uint8Array | undefined {
    const slot = convSlot(keyId, peer, scheme);
    const hit = this.entries.get(slot);
    if (hit !== undefined && !(hit instanceof KeyEntry)) {
      this.touch(slot, hit);
      metrics.cacheHits.inc({ cache: 'conv' });
      return hit.convKey;
    }
    metrics.cacheMisses.inc({ cache: 'conv' });
    return undefined;
  }

  /** Stores a conversation key; the cache takes ownership of the buffer. */
  setConvKey(keyId: string, peer: string, scheme: ConvScheme, convKey: Uint8Array): void {
    const slot = convSlot(keyId, peer, scheme);
    this.remove(slot);
    const bytes = CONV_ENTRY_OVERHEAD + stringBytes(slot) + stringBytes(keyId) + convKey.byteLength;
    this.insert(slot, { keyId, convKey, bytes });
    let slots = this.convByKey.get(keyId);
    if (!slots) this.convByKey.set(keyId, (slots = new Set()));
    slots.add(slot);
    this.convCount++;
    this.fit();
  }

  /** Drops a key and its conversation keys at once (key changed, account deleted). */
  evictKey(keyId: string): void {
    if (this.loading.has(keyId)) this.staleLoads.add(keyId);
    this.remove(keySlot(keyId));
    for (const slot of this.convByKey.get(keyId) ?? []) this.remove(slot);
    this.report();
  }

  clear(): void {
    for (const keyId of this.loading.keys()) this.staleLoads.add(keyId);
    for (const slot of [...this.entries.keys()]) this.remove(slot);
    this.report();
  }

  private async loadKey(keyId: string, load: (keyId: string) => Promise<CachedKey>): Promise<CachedKey> {
    const done = metrics.coldKeyLoad.startTimer();
    try {
      const loaded = await load(keyId);
      done();
      const material = this.keyMaterial(loaded.secretKey);
      if (!this.staleLoads.has(keyId)) return this.setKey(keyId, material, loaded.pubkey);
      return { secretKey: material, pubkey: loaded.pubkey };
    } finally {
      this.loading.delete(keyId);
      this.staleLoads.delete(keyId);
    }
  }

  /** The backend's key material for a loaded secret, which is wiped (it may be a view on a loader's buffer). */
  private keyMaterial(sk: Uint8Array): Uint8Array {
    try {
      return cryptoBackend().keyMaterial(sk);
    } finally {
      sk.fill(0);
    }
  }

  private setKey(keyId: string, material: Uint8Array, pubkey: string): CachedKey {
    if (!/^[0-9a-f]{64}$/.test(pubkey)) throw new TypeError('pubkey must be 64 lowercase hex characters');
    const slotBytes = material.length + PUBKEY_BYTES;
    let slab = this.slabs.get(slotBytes);
    if (!slab) this.slabs.set(slotBytes, (slab = new KeySlab(slotBytes)));
    const slot = keySlot(keyId);
    this.remove(slot);
    const bytes = KEY_ENTRY_OVERHEAD + stringBytes(slot) + slotBytes;
    const record = new Uint8Array(slotBytes);
    record.set(material);
    material.fill(0);
    record.set(Buffer.from(pubkey, 'hex'), material.length);
    const entry = new KeyEntry(slab, slab.store(record), bytes);
    record.fill(0);
    this.insert(slot, entry);
    this.keyCount++;
    this.fit();
    return entry;
  }

  private insert(slot: string, e: Entry): void {
    this.entries.set(slot, e);
    this.bytesHeld += e.bytes;
  }

  private touch(slot: string, e: Entry): void {
    this.entries.delete(slot);
    this.entries.set(slot, e);
  }

  /** Evicts least recently used entries until the budget holds. */
  private fit(): void {
    while (this.bytesHeld > this.maxBytes) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.remove(oldest.value);
    }
    this.report();
  }

  private remove(slot: string): void {
    const e = this.entries.get(slot);
    if (!e) return;
    this.entries.delete(slot);
    this.bytesHeld -= e.bytes;
    if (e instanceof KeyEntry) {
      e.release();
      this.keyCount--;
    } else {
      e.convKey.fill(0);
      this.convCount--;
      const slots = this.convByKey.get(e.keyId);
      slots?.delete(slot);
      if (slots?.size === 0) this.convByKey.delete(e.keyId);
    }
  }

  private report(): void {
    metrics.cacheSize.set({ cache: 'key' }, this.keyCount);
    metrics.cacheSize.set({ cache: 'conv' }, this.convCount);
    metrics.cacheBytes.set(this.bytesHeld);
  }
}
