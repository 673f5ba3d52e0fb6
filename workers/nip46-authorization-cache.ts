// Authorizations the NIP-46 handler has read, kept so a job does not cost a Postgres round trip. Only
// bound authorizations are kept (an unbound one is about to change, and its binding may happen in
// another worker): their secret, keys and policy do not change, and what does (revocation, logout,
// expiry) either arrives as an eviction broadcast, happens in this worker, or is checked per request
// (expires_at). Entries also age out after `ttlMs`, and everything is dropped when the eviction
// subscription reconnects, since broadcasts sent while it was away are lost.
import { LRUCache } from 'lru-cache';
import type { Nip46Authorization } from '../database/queries/nip46.js';
import type { Nip46Store } from './nip46-processor.js';

export interface Nip46AuthorizationCacheOptions {
  max?: number;
  ttlMs?: number;
}

export class CachedNip46Store implements Nip46Store {
  private readonly byBunker: LRUCache<string, Nip46Authorization>;
  private readonly bunkerOf = new Map<string, string>();

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
    for (const auth of await this.inner.findAuthorizations(missing)) {
      found.push(auth);
      this.keep(auth);
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

  /** A revocation (or other change) announced for this authorization. */
  evict(authorizationId: string): void {
    const bunker = this.bunkerOf.get(authorizationId);
    if (bunker !== undefined) this.byBunker.delete(bunker);
  }

  clear(): void {
    this.byBunker.clear();
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
