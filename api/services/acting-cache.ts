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

/**
 * A database read in flight. An eviction that lands while it runs may postdate what it read, so the
 * read's result goes back to its caller but never into the cache.
 */
interface Load {
  /** Everything was evicted (or the link changed) meanwhile. */
  stale: boolean;
  /** Authorizations evicted meanwhile. */
  evicted: Set<string>;
}

/** After a failed lookup, stale entries are served without asking the database again for this long. */
const DB_RETRY_MS = 1000;

export class ActingCache {
  private readonly entries = new Map<string, Entry>();
  private readonly loads = new Set<Load>();
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
    const load: Load = { stale: false, evicted: new Set() };
    this.loads.add(load);
    let acting: ActingAuthorization | undefined;
    try {
      acting = await findActingByAccessHash(this.db, accessHash);
    } catch (err) {
      this.dbFailedAt = Date.now();
      if (stale && this.entries.get(key) === stale) return stale.acting;
      throw err;
    } finally {
      this.loads.delete(load);
    }
    if (!this.linked || load.stale || (acting !== undefined && load.evicted.has(acting.id))) return acting;
    if (this.entries.size >= this.maxEntries) this.entries.clear();
    this.entries.set(key, { acting, until: now + this.ttlMs });
    return acting;
  }

  evict(e: Eviction): void {
    if (e.type === 'all') return this.clear();
    if (e.type !== 'authorization') return;
    for (const load of this.loads) load.evicted.add(e.authorizationId);
    for (const [key, entry] of this.entries) {
      if (entry.acting?.id === e.authorizationId) this.entries.delete(key);
    }
  }

  clear(): void {
    for (const load of this.loads) load.stale = true;
    this.entries.clear();
  }

  /** Whether evictions are being received; both ways, everything cached (or being read) is dropped. */
  setLinked(linked: boolean): void {
    this.linked = linked;
    this.clear();
  }
}
