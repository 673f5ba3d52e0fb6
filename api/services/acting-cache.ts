// access token -> the authorization it acts under, cached per api process for a short time. A
// revocation is broadcast and evicts here at once; while the broadcast link is down nothing is cached
// (a missed eviction must not leave a revoked token usable), and when it comes back everything is evicted.
//
// A hot token never makes a crowd of queries: concurrent lookups of one token share one read (single
// flight), and an entry in the last stretch of its TTL is refreshed in the background while it is still
// served, so it does not expire under load. Since revocation evicts by broadcast, serving an entry up to
// its TTL (as before) keeps revocation instant.
//
// A request never waits for the database longer than lookupTimeoutMs: past it (or when the read fails)
// an entry past its TTL is still served (up to maxStaleMs), else the caller gets a DatabaseTimeoutError
// (503 at the door). A token that worked a moment ago keeps working, and nothing it could be revoked by
// can happen without the database. No entry is ever served past its access token's own expiry.
import type { Db } from '../../database/pool.js';
import { findActingByAccessHash, type ActingAuthorization } from '../../database/queries/authorizations.js';
import type { Eviction } from '../../shared/evictions.js';

interface Entry {
  acting: ActingAuthorization | undefined;
  /** Past it, the entry is read again in the background while it is served. */
  refreshAt: number;
  until: number;
}

/**
 * A database read in flight, shared by the requests for one token. An eviction that lands while it runs
 * may postdate what it read, so the read's result goes back to its callers but never into the cache, and
 * requests arriving after the eviction start a read of their own.
 */
interface Load {
  result: Promise<ActingAuthorization | undefined>;
  /** Everything was evicted (or the link changed) meanwhile. */
  stale: boolean;
  /** Authorizations evicted meanwhile. */
  evicted: Set<string>;
  /** A request waits for it because the token was not cached (not a background refresh). */
  firstSight: boolean;
}

/** A lookup that did not finish within its deadline: the door answers 503 `database unavailable`. */
export class DatabaseTimeoutError extends Error {
  readonly code = 'ETIMEDOUT';
  constructor(ms: number) {
    super(`token lookup timed out after ${ms} ms`);
    this.name = 'DatabaseTimeoutError';
  }
}

export interface ActingCacheOptions {
  /** How long an entry is served without asking the database. */
  ttlMs: number;
  /** Age from which a request also starts a background refresh of the entry it is served. */
  refreshAfterMs: number;
  maxEntries: number;
  /** How long past its TTL an entry is still served while the database fails or is too slow. */
  maxStaleMs: number;
  /** The longest a request waits for a read of the database. */
  lookupTimeoutMs: number;
  /** Called with what a token's first read found (not on background refreshes): key prefetch hints. */
  onFirstSight?: (acting: ActingAuthorization) => void;
}

const DEFAULTS: ActingCacheOptions = {
  ttlMs: 30_000,
  refreshAfterMs: 25_000,
  maxEntries: 100_000,
  maxStaleMs: 15 * 60_000,
  lookupTimeoutMs: 1500,
};

/** After a failed or timed-out lookup, stale entries are served without asking the database again for this long. */
const DB_RETRY_MS = 1000;

export class ActingCache {
  private readonly entries = new Map<string, Entry>();
  /** Reads that requests for their token may still join. */
  private readonly joinable = new Map<string, Load>();
  /** Every read in flight, joinable or not. */
  private readonly loads = new Set<Load>();
  private readonly opts: ActingCacheOptions;
  private linked = true;
  private dbFailedAt = -Infinity;

  constructor(
    private readonly db: Db,
    opts: Partial<ActingCacheOptions> = {},
  ) {
    this.opts = { ...DEFAULTS, ...opts };
    if (opts.refreshAfterMs === undefined) this.opts.refreshAfterMs = Math.floor((this.opts.ttlMs * 5) / 6);
  }

  async get(accessHash: Buffer): Promise<ActingAuthorization | undefined> {
    if (!this.linked) return this.withDeadline(findActingByAccessHash(this.db, accessHash));
    const key = accessHash.toString('base64');
    const now = Date.now();
    const hit = this.entries.get(key);
    if (hit && hit.until > now) {
      if (now >= hit.refreshAt && now - this.dbFailedAt >= DB_RETRY_MS) this.load(key, accessHash, false);
      return hit.acting;
    }
    const stale = hit && now - hit.until < this.opts.maxStaleMs && !tokenExpired(hit, now) ? hit : undefined;
    if (stale && now - this.dbFailedAt < DB_RETRY_MS) return stale.acting;
    try {
      return await this.withDeadline(this.load(key, accessHash, !stale).result);
    } catch (err) {
      this.dbFailedAt = Date.now();
      if (stale && this.entries.get(key) === stale) return stale.acting;
      throw err;
    }
  }

  /** The entry of a token while it is within its TTL, without asking the database (undefined: not cached). */
  peek(accessHash: Buffer): ActingAuthorization | undefined {
    if (!this.linked) return undefined;
    const hit = this.entries.get(accessHash.toString('base64'));
    return hit && hit.until > Date.now() ? hit.acting : undefined;
  }

  /** The read of this token in flight, or a new one. */
  private load(key: string, accessHash: Buffer, firstSight: boolean): Load {
    const running = this.joinable.get(key);
    if (running) {
      running.firstSight ||= firstSight;
      return running;
    }
    const started = Date.now();
    const load: Load = {
      result: findActingByAccessHash(this.db, accessHash),
      stale: false,
      evicted: new Set(),
      firstSight,
    };
    this.joinable.set(key, load);
    this.loads.add(load);
    const done = () => {
      this.loads.delete(load);
      if (this.joinable.get(key) === load) this.joinable.delete(key);
    };
    load.result.then(
      (acting) => {
        done();
        if (!this.linked || load.stale || (acting !== undefined && load.evicted.has(acting.id))) return;
        if (this.entries.size >= this.opts.maxEntries && !this.entries.has(key)) this.entries.clear();
        let until = started + this.opts.ttlMs;
        if (acting?.accessExpiresAt) until = Math.min(until, acting.accessExpiresAt.getTime());
        this.entries.set(key, { acting, refreshAt: started + this.opts.refreshAfterMs, until });
        if (acting && load.firstSight) this.opts.onFirstSight?.(acting);
      },
      () => {
        done();
        this.dbFailedAt = Date.now();
      },
    );
    return load;
  }

  private withDeadline<T>(p: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new DatabaseTimeoutError(this.opts.lookupTimeoutMs)), this.opts.lookupTimeoutMs);
    });
    return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
  }

  evict(e: Eviction): void {
    if (e.type === 'all') return this.clear();
    if (e.type !== 'authorization') return;
    // Which token a read in flight is for is known only when it returns: none may be joined any more.
    for (const load of this.loads) load.evicted.add(e.authorizationId);
    this.joinable.clear();
    for (const [key, entry] of this.entries) {
      if (entry.acting?.id === e.authorizationId) this.entries.delete(key);
    }
  }

  clear(): void {
    for (const load of this.loads) load.stale = true;
    this.joinable.clear();
    this.entries.clear();
  }

  /** Whether evictions are being received; both ways, everything cached (or being read) is dropped. */
  setLinked(linked: boolean): void {
    this.linked = linked;
    this.clear();
  }
}

function tokenExpired(entry: Entry, now: number): boolean {
  const expires = entry.acting?.accessExpiresAt;
  return expires !== undefined && expires.getTime() <= now;
}
