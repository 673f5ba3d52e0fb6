// The api's token cache: a revocation broadcast that lands while a token is being read must win over
// that read, and nothing is cached while the broadcast link is down.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Db } from '../../database/pool.js';
import type { ActingAuthorization } from '../../database/queries/authorizations.js';
import { ActingCache } from '../../api/services/acting-cache.js';

function acting(id: string, revokedAt: Date | null = null): ActingAuthorization {
  return {
    id, userId: 'u', userPubkey: 'p', userKeyId: 'k', policySlug: 'full',
    permissions: { allowed_kinds: 'all', encrypt: true, decrypt: true }, revokedAt, expiresAt: null, tokenRevoked: false,
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
    query: async (_sql: string, params: unknown[]) => {
      this.reads++;
      const row = this.rows.get((params[0] as Buffer).toString('base64'));
      const snapshot = row ? { ...row } : undefined;
      if (this.gated) await new Promise<void>((resolve) => this.gates.push(resolve));
      return { rows: snapshot ? [snapshot] : [], rowCount: snapshot ? 1 : 0 };
    },
  } as unknown as Db;

  /** Lets every read waiting so far complete. */
  release(): void {
    for (const open of this.gates.splice(0)) open();
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
