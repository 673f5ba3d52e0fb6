// access token -> the authorization it acts under, cached per api process for a short time. A
// revocation is broadcast and evicts here at once; if the broadcast link drops, everything is evicted.
import type { Db } from '../../database/pool.js';
import { findActingByAccessHash, type ActingAuthorization } from '../../database/queries/authorizations.js';
import type { Eviction } from '../../shared/evictions.js';

interface Entry {
  acting: ActingAuthorization | undefined;
  until: number;
}

export class ActingCache {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly db: Db,
    private readonly ttlMs = 30_000,
    private readonly maxEntries = 100_000,
  ) {}

  async get(accessHash: Buffer): Promise<ActingAuthorization | undefined> {
    const key = accessHash.toString('base64');
    const now = Date.now();
    const hit = this.entries.get(key);
    if (hit && hit.until > now) return hit.acting;
    const acting = await findActingByAccessHash(this.db, accessHash);
    if (this.entries.size >= this.maxEntries) this.entries.clear();
    this.entries.set(key, { acting, until: now + this.ttlMs });
    return acting;
  }

  evict(e: Eviction): void {
    if (e.type === 'all') return this.entries.clear();
    if (e.type !== 'authorization') return;
    for (const [key, entry] of this.entries) {
      if (entry.acting?.id === e.authorizationId) this.entries.delete(key);
    }
  }

  clear(): void {
    this.entries.clear();
  }
}
