// Authorizations the NIP-46 handler has read, kept so a job does not cost a Postgres round trip. Only
// bound authorizations are kept (an unbound one is about to change, and its binding may happen in
// another worker): their secret, keys and policy do not change, and what does (revocation, logout,
// expiry) either arrives as an eviction broadcast, happens in this worker, or is checked per request
// (expires_at). Entries also age out after `ttlMs`. Broadcasts sent while the eviction subscription is
// down are lost, so while it is down nothing is cached, and both ways everything cached is dropped.
import { LRUCache } from 'lru-cache';
import type { Nip46Authorization } from '../database/queries/nip46.js';
import type { Nip46Store } from './nip46-processor.js';

export interface Nip46AuthorizationCacheOptions {
  max?: number;
  ttlMs?: number;
}

/**
 * A table read in flight. An eviction that lands while it runs may postdate what it read, so the rows
 * it names go back to the job that asked but never into the cache.
 */
interface Load {
  /** Everything was evicted (or the link changed) meanwhile. */
  stale: boolean;
  /** Authorizations evicted meanwhile. */
  evicted: Set<string>;
}

export class CachedNip46Store implements Nip46Store {
  private readonly byBunker: LRUCache<string, Nip46Authorization>;
  private readonly bunkerOf = new Map<string, string>();
  private readonly loads = new Set<Load>();
  private linked = true;

  constructor(
    private readonly inner: Nip46Store,
    opts: Nip46AuthorizationCacheOptions = {},
  ) {
    this.byBunker = new LRUCache({
      max: opts.max ?? 100_000,
      ttl: opts.ttlMs ?? 60_000,
      dispose: (auth) => this.bunkerOf.delete(auth.id),
    });
  }

  async findAuthorizations(bunkerPubkeys: string[]): Promise<Nip46Authorization[]> {
    const found: Nip46Authorization[] = [];
    const missing: string[] = [];
    for (const pk of bunkerPubkeys) {
      const hit = this.byBunker.get(pk);
      if (hit) found.push(hit);
      else missing.push(pk);
    }
    if (missing.length === 0) return found;
    const load: Load = { stale: false, evicted: new Set() };
    this.loads.add(load);
    let read: Nip46Authorization[];
    try {
      read = await this.inner.findAuthorizations(missing);
    } finally {
      this.loads.delete(load);
    }
    for (const auth of read) {
      found.push(auth);
      if (this.linked && !load.stale && !load.evicted.has(auth.id)) this.keep(auth);
    }
    return found;
  }

  async bindClient(authorizationId: string, secretHash: Buffer, clientPubkey: string): Promise<boolean> {
    return this.inner.bindClient(authorizationId, secretHash, clientPubkey);
  }

  async logout(authorizationId: string, clientPubkey: string): Promise<boolean> {
    this.evict(authorizationId);
    return this.inner.logout(authorizationId, clientPubkey);
  }

  takeUse(authorizationId: string, max: number): Promise<boolean> {
    return this.inner.takeUse(authorizationId, max);
  }

  /** A revocation (or other change) announced for this authorization. */
  evict(authorizationId: string): void {
    for (const load of this.loads) load.evicted.add(authorizationId);
    const bunker = this.bunkerOf.get(authorizationId);
    if (bunker !== undefined) this.byBunker.delete(bunker);
  }

  clear(): void {
    for (const load of this.loads) load.stale = true;
    this.byBunker.clear();
  }

  /** Whether evictions are being received: while not, nothing is cached; both ways, everything is dropped. */
  setLinked(linked: boolean): void {
    this.linked = linked;
    this.clear();
  }

  get size(): number {
    return this.byBunker.size;
  }

  private keep(auth: Nip46Authorization): void {
    if (auth.clientPubkey === null || auth.revokedAt !== null) return;
    this.byBunker.set(auth.bunkerPubkey, auth);
    this.bunkerOf.set(auth.id, auth.bunkerPubkey);
  }
}
