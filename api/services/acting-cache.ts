// access token -> the authorization it acts under, cached per api process for a short time. A
// revocation is broadcast and evicts here at once; while the broadcast link is down nothing is cached
// (a missed eviction must not leave a revoked token usable), and when it comes back everything is evicted.
//
// While PostgreSQL is down, an entry past its TTL is still served (up to maxStaleMs): a token that worked
// a moment ago keeps working, and nothing it could be revoked by can happen without the database.
import type { Db } from '../../database/pool.js';
import { findActingByAccessHash, type ActingAuthorization } from '../../database/queries/authorizations.js';
import type { Eviction } from '../../shared/evictions.js';

interface Entry {
  acting: ActingAuthorization | undefined;
  until: number;
}

/** After a failed lookup, stale entries are served without asking the database again for this long. */
const DB_RETRY_MS = 1000;

export class ActingCache {
  private readonly entries = new Map<string, Entry>();
  private linked = true;
  private dbFailedAt = -Infinity;

  constructor(
    private readonly db: Db,
    private readonly ttlMs = 30_000,
    private readonly maxEntries = 100_000,
    private readonly maxStaleMs = 15 * 60_000,
  ) {}

  async get(accessHash: Buffer): Promise<ActingAuthorization | undefined> {
    if (!this.linked) return findActingByAccessHash(this.db, accessHash);
    const key = accessHash.toString('base64');
    const now = Date.now();
    const hit = this.entries.get(key);
    if (hit && hit.until > now) return hit.acting;
    const stale = hit && now - hit.until < this.maxStaleMs ? hit : undefined;
    if (stale && now - this.dbFailedAt < DB_RETRY_MS) return stale.acting;
    let acting: ActingAuthorization | undefined;
    try {
      acting = await findActingByAccessHash(this.db, accessHash);
    } catch (err) {
      this.dbFailedAt = Date.now();
      if (stale && this.entries.get(key) === stale) return stale.acting;
      throw err;
    }
    if (!this.linked) return acting;
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

  /** Whether evictions are being received; both ways, everything cached is dropped. */
  setLinked(linked: boolean): void {
    this.linked = linked;
    this.entries.clear();
  }
}
