// The decrypted-key cache of a worker process: an LRU under a byte budget holding users' and bunkers'
// secret keys (by key id) and NIP-44/NIP-04 conversation keys (by key id, peer and scheme).
// Secret buffers are zeroed when an entry leaves the cache. The cache owns what it holds: callers copy a
// buffer before handing it anywhere (the crypto pool, a later await) since eviction may zero it.
import { metrics } from '../shared/metrics.js';

export interface CachedKey {
  secretKey: Uint8Array;
  pubkey: string;
}

export type ConvScheme = 'nip44' | 'nip04';

/**
 * Heap cost of one entry beyond its strings (Map slot, entry objects, the 32-byte Uint8Array and its
 * ArrayBuffer, the conversation-key index), measured on Node 20 x64 with process.memoryUsage() over 50k
 * entries: ~400 bytes per key plus its id and pubkey strings (~540 in all), ~660 per conversation key.
 * So the default 64 MiB budget holds about 120k keys.
 */
export const KEY_ENTRY_OVERHEAD = 320;
export const CONV_ENTRY_OVERHEAD = 440;
/** V8 one-byte strings: a 16-byte header, then one byte per character, rounded to 8. */
const stringBytes = (s: string) => 16 + Math.ceil(s.length / 8) * 8;

interface KeyEntry {
  kind: 'key';
  keyId: string;
  value: CachedKey;
  bytes: number;
}

interface ConvEntry {
  kind: 'conv';
  keyId: string;
  convKey: Uint8Array;
  bytes: number;
}

type Entry = KeyEntry | ConvEntry;

const keySlot = (keyId: string) => `k|${keyId}`;
const convSlot = (keyId: string, peer: string, scheme: ConvScheme) => `c|${keyId}|${scheme}|${peer}`;

export class KeyCache {
  /** Insertion order is recency order: the first entry is the least recently used. */
  private readonly entries = new Map<string, Entry>();
  /** Conversation-key slots per key id, so evicting a key takes its conversation keys along. */
  private readonly convByKey = new Map<string, Set<string>>();
  private readonly loading = new Map<string, Promise<CachedKey>>();
  /** Key ids evicted while a load was running: that load's result must not enter the cache. */
  private readonly staleLoads = new Set<string>();
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
    return e?.kind === 'key' ? e.value : undefined;
  }

  /**
   * The key from the cache, or loaded with `load` on a miss. Concurrent misses for one key share one load.
   * The returned buffers belong to the cache: copy before use across an await.
   */
  async getKey(keyId: string, load: (keyId: string) => Promise<CachedKey>): Promise<CachedKey> {
    const slot = keySlot(keyId);
    const hit = this.entries.get(slot);
    if (hit?.kind === 'key') {
      this.touch(slot, hit);
      metrics.cacheHits.inc({ cache: 'key' });
      return hit.value;
    }
    metrics.cacheMisses.inc({ cache: 'key' });
    const running = this.loading.get(keyId);
    if (running) return running;
    const loaded = this.loadKey(keyId, load);
    this.loading.set(keyId, loaded);
    return loaded;
  }

  getConvKey(keyId: string, peer: string, scheme: ConvScheme): Uint8Array | undefined {
    const slot = convSlot(keyId, peer, scheme);
    const hit = this.entries.get(slot);
    if (hit?.kind === 'conv') {
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
    this.insert(slot, { kind: 'conv', keyId, convKey, bytes });
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
      const key = await load(keyId);
      done();
      return this.staleLoads.has(keyId) ? key : this.setKey(keyId, key);
    } finally {
      this.loading.delete(keyId);
      this.staleLoads.delete(keyId);
    }
  }

  /** Caches a loaded key and returns what is cached (a secret that is a view on a larger buffer is copied out). */
  private setKey(keyId: string, loaded: CachedKey): CachedKey {
    let value = loaded;
    const sk = loaded.secretKey;
    if (sk.byteOffset !== 0 || sk.buffer.byteLength !== sk.byteLength) {
      value = { secretKey: new Uint8Array(sk), pubkey: loaded.pubkey }; // a copy even for a Buffer (whose slice() is a view)
      sk.fill(0);
    }
    const slot = keySlot(keyId);
    this.remove(slot);
    const bytes = KEY_ENTRY_OVERHEAD + stringBytes(slot) + stringBytes(keyId) + stringBytes(value.pubkey) + value.secretKey.byteLength;
    this.insert(slot, { kind: 'key', keyId, value, bytes });
    this.keyCount++;
    this.fit();
    return value;
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
    if (e.kind === 'key') {
      e.value.secretKey.fill(0);
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
