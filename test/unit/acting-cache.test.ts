// The api's token cache: a revocation broadcast that lands while a token is being read must win over
// that read, and nothing is cached while the broadcast link is down.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Db } from '../../database/pool.js';
import type { ActingAuthorization } from '../../database/queries/authorizations.js';
import { ActingCache } from '../../api/services/acting-cache.js';

function acting(id: string, revokedAt: Date | null = null): ActingAuthorization {
  return {
    id,
    userId: 'u',
    userPubkey: 'p',
    userKeyId: 'k',
    policySlug: 'full',
    permissions: { allowed_kinds: 'all', encrypt: true, decrypt: true },
    grantedKinds: [],
    revokedAt,
    expiresAt: null,
    tokenRevoked: false,
  };
}

/**
 * A stand-in for the oauth_tokens table: every read returns the row as it is when the read STARTS
 * (as PostgreSQL's snapshot would), and completes only when the test releases it.
 */
class GatedTable {
  rows = new Map<string, ActingAuthorization>();
  reads = 0;
  private gates: (() => void)[] = [];
  gated = false;

  readonly db = {
    query: async (query: string | { values: unknown[] }, params?: unknown[]) => {
      this.reads++;
      const values = typeof query === 'string' ? params! : query.values;
      const row = this.rows.get((values[0] as Buffer).toString('base64'));
      const snapshot = row ? { ...row } : undefined;
      if (this.gated) await new Promise<void>((resolve) => this.gates.push(resolve));
      return { rows: snapshot ? [snapshot] : [], rowCount: snapshot ? 1 : 0 };
    },
  } as unknown as Db;

  /** Lets every read waiting so far complete. */
  release(): void {
    for (const open of this.gates.splice(0)) open();
  }

  /** Lets the oldest read waiting complete. */
  releaseOldest(): void {
    this.gates.shift()?.();
  }

  async waitForReads(n: number): Promise<void> {
    const end = Date.now() + 2000;
    while (this.gates.length < n) {
      if (Date.now() > end) throw new Error(`expected ${n} table read(s) in progress, found ${this.gates.length}`);
      await new Promise((r) => setImmediate(r));
    }
  }
}

const token = Buffer.alloc(32, 7);
const key = token.toString('base64');

test('a revocation that lands while the token is being read is not undone by that read', async () => {
  const table = new GatedTable();
  table.rows.set(key, acting('auth-1'));
  const cache = new ActingCache(table.db);
  table.gated = true;
  const reading = cache.get(token);
  await table.waitForReads(1);
  // The revoke commits and is broadcast while the read (of the live row) is still on its way back.
  table.rows.set(key, acting('auth-1', new Date()));
  cache.evict({ type: 'authorization', authorizationId: 'auth-1' });
  table.release();
  assert.equal((await reading)?.revokedAt, null, 'the caller that asked before the revoke gets its read');
  table.gated = false;
  const after = await cache.get(token);
  assert.ok(after?.revokedAt instanceof Date, 'the next request sees the revocation, not a cached live row');
  assert.equal(table.reads, 2);
});

test('an eviction of everything, or of the link, during a read keeps that read out of the cache', async () => {
  for (const interrupt of [
    (c: ActingCache) => c.evict({ type: 'all' }),
    (c: ActingCache) => c.setLinked(false),
    (c: ActingCache) => (c.setLinked(false), c.setLinked(true)),
  ]) {
    const table = new GatedTable();
    table.rows.set(key, acting('auth-1'));
    const cache = new ActingCache(table.db);
    table.gated = true;
    const reading = cache.get(token);
    await table.waitForReads(1);
    interrupt(cache);
    table.release();
    await reading;
    table.gated = false;
    await cache.get(token);
    assert.equal(table.reads, 2, `read again after ${interrupt.toString()}`);
  }
});

test('an eviction of another authorization does not spoil a read; a read without interruptions is cached', async () => {
  const table = new GatedTable();
  table.rows.set(key, acting('auth-1'));
  const cache = new ActingCache(table.db);
  table.gated = true;
  const reading = cache.get(token);
  await table.waitForReads(1);
  cache.evict({ type: 'authorization', authorizationId: 'auth-other' });
  table.release();
  await reading;
  table.gated = false;
  await cache.get(token);
  await cache.get(token);
  assert.equal(table.reads, 1, 'served from the cache');
  cache.evict({ type: 'authorization', authorizationId: 'auth-1' });
  await cache.get(token);
  assert.equal(table.reads, 2, 'read again after its eviction');
});

test('while the broadcast link is down nothing is cached', async () => {
  const table = new GatedTable();
  table.rows.set(key, acting('auth-1'));
  const cache = new ActingCache(table.db);
  cache.setLinked(false);
  await cache.get(token);
  await cache.get(token);
  assert.equal(table.reads, 2);
  cache.setLinked(true);
  await cache.get(token);
  await cache.get(token);
  assert.equal(table.reads, 3);
});

/** A table that fails every read while `down` is set, as PostgreSQL does when it is unreachable. */
class FlakyTable extends GatedTable {
  down = false;
  readonly flaky = {
    query: async (sql: string, params: unknown[]) => {
      if (this.down) {
        this.reads++;
        throw new Error('connect ECONNREFUSED');
      }
      return (this.db as unknown as { query: (s: string, p: unknown[]) => Promise<unknown> }).query(sql, params);
    },
  } as unknown as Db;
}

const otherToken = Buffer.alloc(32, 8);

test('an entry is served until its TTL, then read again', async (t) => {
  t.mock.timers.enable({ apis: ['Date'] });
  const table = new GatedTable();
  table.rows.set(key, acting('auth-1'));
  const cache = new ActingCache(table.db, { ttlMs: 1000, refreshAfterMs: 1000 });
  await cache.get(token);
  t.mock.timers.tick(999);
  await cache.get(token);
  assert.equal(table.reads, 1, 'fresh until the TTL');
  t.mock.timers.tick(1);
  await cache.get(token);
  assert.equal(table.reads, 2, 'read again at the TTL');
});

test('concurrent lookups of one token share one read', async () => {
  const table = new GatedTable();
  table.rows.set(key, acting('auth-1'));
  const cache = new ActingCache(table.db);
  table.gated = true;
  const lookups = Array.from({ length: 500 }, () => cache.get(token));
  await table.waitForReads(1);
  table.release();
  const results = await Promise.all(lookups);
  assert.ok(results.every((r) => r?.id === 'auth-1'));
  assert.equal(table.reads, 1, 'one read for 500 concurrent lookups');
});

test('an entry near the end of its TTL is refreshed in the background while it is served', async (t) => {
  t.mock.timers.enable({ apis: ['Date'] });
  const table = new GatedTable();
  table.rows.set(key, acting('auth-1'));
  const cache = new ActingCache(table.db, { ttlMs: 1000, refreshAfterMs: 800 });
  await cache.get(token);
  t.mock.timers.tick(800);
  table.gated = true;
  table.rows.set(key, acting('auth-1b'));
  // Many requests in the refresh window: each is served at once, and they start one read between them.
  for (let i = 0; i < 100; i++) assert.equal((await cache.get(token))?.id, 'auth-1');
  await table.waitForReads(1);
  assert.equal(table.reads, 2);
  table.release();
  await new Promise((r) => setImmediate(r));
  t.mock.timers.tick(799);
  assert.equal((await cache.get(token))?.id, 'auth-1b', 'the refreshed entry, fresh for a new TTL');
  assert.equal(table.reads, 2, 'no read at the old expiry');
});

test('a lookup that joins a read after an eviction does not get that read', async () => {
  const table = new GatedTable();
  table.rows.set(key, acting('auth-1'));
  const cache = new ActingCache(table.db);
  table.gated = true;
  const before = cache.get(token);
  await table.waitForReads(1);
  table.rows.set(key, acting('auth-1', new Date()));
  cache.evict({ type: 'authorization', authorizationId: 'auth-1' });
  const after = cache.get(token);
  await table.waitForReads(2);
  table.release();
  assert.equal((await before)?.revokedAt, null);
  assert.ok((await after)?.revokedAt instanceof Date, 'a request after the revocation reads it');
});

test("a lookup waits at most lookupTimeoutMs: a stale entry is served past it, else the timeout is the caller's", async (t) => {
  const table = new GatedTable();
  table.rows.set(key, acting('auth-1'));
  const cache = new ActingCache(table.db, { ttlMs: 1, lookupTimeoutMs: 50 });
  await cache.get(token);
  await new Promise((r) => setTimeout(r, 5));
  table.gated = true;
  const started = Date.now();
  assert.equal((await cache.get(token))?.id, 'auth-1', 'the stale entry, once the read is too slow');
  await assert.rejects(cache.get(otherToken), {
    name: 'DatabaseTimeoutError',
    code: 'ETIMEDOUT',
    message: 'token lookup timed out after 50 ms',
  });
  assert.ok(Date.now() - started < 1000, `both answered within their deadlines (${Date.now() - started} ms)`);
  table.release();
  t.diagnostic(`reads ${table.reads}`);
});

test("no entry is served past its access token's expiry, even while PostgreSQL is down", async (t) => {
  t.mock.timers.enable({ apis: ['Date'] });
  const table = new FlakyTable();
  table.rows.set(key, { ...acting('auth-1'), accessExpiresAt: new Date(Date.now() + 500) });
  const cache = new ActingCache(table.flaky, { ttlMs: 1000 });
  await cache.get(token);
  table.down = true;
  t.mock.timers.tick(499);
  assert.equal((await cache.get(token))?.id, 'auth-1');
  t.mock.timers.tick(1);
  await assert.rejects(cache.get(token), /ECONNREFUSED/, 'not served stale once the token itself has expired');
});

test('while PostgreSQL is down a token that worked keeps working up to maxStaleMs, and no longer', async (t) => {
  t.mock.timers.enable({ apis: ['Date'] });
  const table = new FlakyTable();
  table.rows.set(key, acting('auth-1'));
  const cache = new ActingCache(table.flaky, { ttlMs: 1000, maxEntries: 100, maxStaleMs: 60_000 });
  await cache.get(token);
  table.down = true;
  t.mock.timers.tick(1000);
  assert.equal((await cache.get(token))?.id, 'auth-1', 'stale entry served when the read fails');
  assert.equal(table.reads, 2);
  // Within a second of a failure the database is not asked again for a stale entry.
  t.mock.timers.tick(999);
  assert.equal((await cache.get(token))?.id, 'auth-1');
  assert.equal(table.reads, 2, 'no read within DB_RETRY_MS of a failure');
  t.mock.timers.tick(1);
  assert.equal((await cache.get(token))?.id, 'auth-1');
  assert.equal(table.reads, 3, 'asked again once DB_RETRY_MS has passed');
  // Past maxStaleMs (counted from the end of the TTL) the failure is the caller's.
  t.mock.timers.tick(60_000 - 1000 - 1);
  assert.equal((await cache.get(token))?.id, 'auth-1', 'just inside maxStaleMs');
  t.mock.timers.tick(1);
  await assert.rejects(cache.get(token), /ECONNREFUSED/, 'at maxStaleMs past the TTL');
});

test('a token never read before gets the database error, not a cached answer', async (t) => {
  t.mock.timers.enable({ apis: ['Date'] });
  const table = new FlakyTable();
  const cache = new ActingCache(table.flaky);
  table.down = true;
  await assert.rejects(cache.get(token), /ECONNREFUSED/);
  await assert.rejects(cache.get(token), /ECONNREFUSED/, 'a failure caches nothing');
  assert.equal(table.reads, 2);
});

test('a stale entry evicted while the failing read ran is not served', async (t) => {
  t.mock.timers.enable({ apis: ['Date'] });
  const table = new FlakyTable();
  table.rows.set(key, acting('auth-1'));
  const cache = new ActingCache(table.flaky, { ttlMs: 1000 });
  await cache.get(token);
  t.mock.timers.tick(1000);
  table.down = true;
  // The read that will fail is held; the revocation's eviction lands meanwhile.
  const failing = (table.flaky as unknown as { query: unknown }).query;
  (table.flaky as unknown as { query: unknown }).query = async (sql: string, params: unknown[]) => {
    await new Promise<void>((resolve) => setImmediate(resolve));
    cache.evict({ type: 'authorization', authorizationId: 'auth-1' });
    return (failing as (s: string, p: unknown[]) => Promise<unknown>)(sql, params);
  };
  await assert.rejects(cache.get(token), /ECONNREFUSED/, 'the evicted entry is not served stale');
});

test('evicting one authorization keeps the others; a key eviction keeps everything', async () => {
  const table = new GatedTable();
  table.rows.set(key, acting('auth-1'));
  table.rows.set(otherToken.toString('base64'), acting('auth-2'));
  const unknown = Buffer.alloc(32, 9);
  const cache = new ActingCache(table.db);
  assert.equal((await cache.get(token))?.id, 'auth-1');
  assert.equal((await cache.get(otherToken))?.id, 'auth-2');
  assert.equal(await cache.get(unknown), undefined);
  assert.equal(table.reads, 3);
  cache.evict({ type: 'key', keyId: 'k' });
  cache.evict({ type: 'authorization', authorizationId: 'auth-2' });
  await cache.get(token);
  await cache.get(unknown);
  assert.equal(table.reads, 3, 'auth-1 and the unknown token are still cached');
  await cache.get(otherToken);
  assert.equal(table.reads, 4, 'auth-2 was read again');
});

test('a full cache starts over rather than grow past maxEntries', async () => {
  const table = new GatedTable();
  const tokens = [1, 2, 3].map((n) => Buffer.alloc(32, n));
  for (const [i, t] of tokens.entries()) table.rows.set(t.toString('base64'), acting(`auth-${i}`));
  const cache = new ActingCache(table.db, { ttlMs: 30_000, maxEntries: 2 });
  await cache.get(tokens[0]!);
  await cache.get(tokens[1]!);
  await cache.get(tokens[1]!);
  assert.equal(table.reads, 2, 'two entries fit');
  await cache.get(tokens[2]!);
  await cache.get(tokens[0]!);
  assert.equal(table.reads, 4, 'the third emptied the cache');
});

test('by default a token is served stale for 15 minutes past its 30-second TTL while PostgreSQL is down', async (t) => {
  t.mock.timers.enable({ apis: ['Date'] });
  const table = new FlakyTable();
  table.rows.set(key, acting('auth-1'));
  const cache = new ActingCache(table.flaky);
  await cache.get(token);
  table.down = true;
  t.mock.timers.tick(30_000 + 15 * 60_000 - 1);
  assert.equal((await cache.get(token))?.id, 'auth-1');
  t.mock.timers.tick(1);
  await assert.rejects(cache.get(token), /ECONNREFUSED/);
});

test('with only ttlMs given, an entry is refreshed from five sixths of its TTL on', async (t) => {
  t.mock.timers.enable({ apis: ['Date'] });
  const table = new GatedTable();
  table.rows.set(key, acting('auth-1'));
  const cache = new ActingCache(table.db, { ttlMs: 600 });
  await cache.get(token);
  t.mock.timers.tick(499);
  await cache.get(token);
  assert.equal(table.reads, 1, 'no refresh before 500 ms');
  t.mock.timers.tick(1);
  await cache.get(token);
  assert.equal(table.reads, 2, 'a background refresh at 500 ms');
});

test('a token found in no row is cached as such, and read again once its TTL is over', async (t) => {
  t.mock.timers.enable({ apis: ['Date'] });
  const table = new GatedTable();
  const cache = new ActingCache(table.db, { ttlMs: 1000 });
  assert.equal(await cache.get(token), undefined);
  assert.equal(await cache.get(token), undefined);
  assert.equal(table.reads, 1);
  t.mock.timers.tick(1000);
  table.rows.set(key, acting('auth-1'));
  assert.equal((await cache.get(token))?.id, 'auth-1', 'the row written since, not an error');
  assert.equal(table.reads, 2);
});

test('within a second of a failed refresh, a fresh entry is served without asking the database again', async (t) => {
  t.mock.timers.enable({ apis: ['Date'] });
  const table = new FlakyTable();
  table.rows.set(key, acting('auth-1'));
  const cache = new ActingCache(table.flaky, { ttlMs: 10_000, refreshAfterMs: 500 });
  await cache.get(token);
  table.down = true;
  t.mock.timers.tick(500);
  assert.equal((await cache.get(token))?.id, 'auth-1');
  assert.equal(table.reads, 2, 'the refresh was tried');
  await new Promise((r) => setImmediate(r)); // the refresh's failure is recorded
  t.mock.timers.tick(999);
  assert.equal((await cache.get(token))?.id, 'auth-1');
  assert.equal(table.reads, 2, 'no refresh within DB_RETRY_MS of the failure');
  t.mock.timers.tick(1);
  assert.equal((await cache.get(token))?.id, 'auth-1');
  assert.equal(table.reads, 3, 'tried again once DB_RETRY_MS has passed');
});

test('while the broadcast link is down, concurrent lookups of one token each read the database', async () => {
  const table = new GatedTable();
  table.rows.set(key, acting('auth-1'));
  const cache = new ActingCache(table.db);
  cache.setLinked(false);
  table.gated = true;
  const lookups = [cache.get(token), cache.get(token)];
  await table.waitForReads(2);
  table.release();
  assert.deepEqual(
    (await Promise.all(lookups)).map((a) => a?.id),
    ['auth-1', 'auth-1'],
  );
});

test('the read started after an eviction stays joinable when the older read returns', async () => {
  const table = new GatedTable();
  table.rows.set(key, acting('auth-1'));
  const cache = new ActingCache(table.db);
  table.gated = true;
  const before = cache.get(token);
  await table.waitForReads(1);
  cache.evict({ type: 'authorization', authorizationId: 'auth-1' });
  const after = cache.get(token);
  await table.waitForReads(2);
  table.releaseOldest();
  await before;
  const joining = cache.get(token);
  await new Promise((r) => setImmediate(r));
  assert.equal(table.reads, 2, 'the third lookup joined the read in flight');
  table.release();
  assert.equal((await after)?.id, 'auth-1');
  assert.equal((await joining)?.id, 'auth-1');
});

test('while PostgreSQL is down, an entry whose access token has not expired yet is served stale', async (t) => {
  t.mock.timers.enable({ apis: ['Date'] });
  const table = new FlakyTable();
  table.rows.set(key, { ...acting('auth-1'), accessExpiresAt: new Date(Date.now() + 3_600_000) });
  const cache = new ActingCache(table.flaky, { ttlMs: 1000 });
  await cache.get(token);
  table.down = true;
  t.mock.timers.tick(1000);
  assert.equal((await cache.get(token))?.id, 'auth-1', 'past its TTL, an hour before the token expires');
});

test("a token's first read is announced once (key prefetch); refreshes and joined reads are not", async (t) => {
  t.mock.timers.enable({ apis: ['Date'] });
  const table = new GatedTable();
  table.rows.set(key, acting('auth-1'));
  const seen: string[] = [];
  const cache = new ActingCache(table.db, { ttlMs: 1000, refreshAfterMs: 800, onFirstSight: (a) => seen.push(a.id) });
  table.gated = true;
  const both = Promise.all([cache.get(token), cache.get(token)]);
  await table.waitForReads(1);
  table.release();
  await both;
  assert.deepEqual(seen, ['auth-1'], 'two requests joined one read: one announcement');
  t.mock.timers.tick(800);
  table.gated = false;
  await cache.get(token); // starts the background refresh
  await new Promise((r) => setImmediate(r));
  assert.equal(table.reads, 2);
  assert.deepEqual(seen, ['auth-1'], 'a refresh is not a first sight');
  const unknown = Buffer.alloc(32, 9);
  assert.equal(await cache.get(unknown), undefined);
  assert.deepEqual(seen, ['auth-1'], 'an unknown token announces nothing');
});
