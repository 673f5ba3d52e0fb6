// The worker's cache of NIP-46 authorizations: what it keeps, what it reads again, what evicts it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Nip46Authorization } from '../../database/queries/nip46.js';
import type { Nip46Store } from '../../workers/nip46-processor.js';
import { CachedNip46Store } from '../../workers/nip46-authorization-cache.js';

function auth(n: number, clientPubkey: string | null, revokedAt: Date | null = null): Nip46Authorization {
  return {
    id: `auth-${n}`,
    userId: 'u',
    bunkerPubkey: `bunker-${n}`,
    bunkerKeyId: `bk-${n}`,
    secretHash: Buffer.alloc(32),
    clientPubkey,
    relays: [],
    revokedAt,
    expiresAt: null,
    userPubkey: 'p',
    userKeyId: 'uk',
    permissions: { allowed_kinds: 'all', encrypt: true, decrypt: true },
    grantedKinds: [],
  };
}

class CountingStore implements Nip46Store {
  reads: string[][] = [];
  constructor(public rows: Map<string, Nip46Authorization>) {}
  async findAuthorizations(pks: string[]) {
    this.reads.push(pks);
    return pks.flatMap((pk) => (this.rows.has(pk) ? [{ ...this.rows.get(pk)! }] : []));
  }
  async bindClient() {
    return true;
  }
  async logout() {
    return true;
  }
  async takeUse() {
    return true;
  }
}

test('bound authorizations are served from memory; unbound and revoked ones are read every time', async () => {
  const inner = new CountingStore(
    new Map([
      ['bunker-1', auth(1, 'client')],
      ['bunker-2', auth(2, null)],
      ['bunker-3', auth(3, 'c', new Date())],
    ]),
  );
  const store = new CachedNip46Store(inner);
  assert.equal((await store.findAuthorizations(['bunker-1', 'bunker-2', 'bunker-3', 'bunker-9'])).length, 3);
  assert.deepEqual(inner.reads, [['bunker-1', 'bunker-2', 'bunker-3', 'bunker-9']]);
  const again = await store.findAuthorizations(['bunker-1', 'bunker-2', 'bunker-3']);
  assert.deepEqual(again.map((a) => a.id).sort(), ['auth-1', 'auth-2', 'auth-3']);
  assert.deepEqual(inner.reads[1], ['bunker-2', 'bunker-3'], 'only the bound, live one is cached');
  assert.equal(store.size, 1);
});

test('an eviction, a logout, a clear or the TTL makes the next job read the table again', async () => {
  const inner = new CountingStore(new Map([['bunker-1', auth(1, 'client')]]));
  const store = new CachedNip46Store(inner, { ttlMs: 50 });
  const readsAfter = async () => {
    await store.findAuthorizations(['bunker-1']);
    return inner.reads.length;
  };
  assert.equal(await readsAfter(), 1);
  assert.equal(await readsAfter(), 1);
  store.evict('auth-1');
  assert.equal(await readsAfter(), 2, 'after the revocation broadcast');
  store.evict('auth-unknown');
  assert.equal(await readsAfter(), 2);
  await store.logout('auth-1', 'client');
  assert.equal(await readsAfter(), 3, 'after a logout in this worker');
  store.clear();
  assert.equal(await readsAfter(), 4, 'after the eviction subscription reconnects');
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(await readsAfter(), 5, 'after the TTL');
});

/** A store whose reads return the rows as they were when the read began, and finish when released. */
class GatedStore extends CountingStore {
  private gates: (() => void)[] = [];
  override async findAuthorizations(pks: string[]) {
    const rows = await super.findAuthorizations(pks);
    await new Promise<void>((resolve) => this.gates.push(resolve));
    return rows;
  }
  async waitForReads(n: number) {
    const end = Date.now() + 2000;
    while (this.gates.length < n) {
      if (Date.now() > end) throw new Error(`expected ${n} table read(s) in progress, found ${this.gates.length}`);
      await new Promise((r) => setImmediate(r));
    }
  }
  release() {
    for (const open of this.gates.splice(0)) open();
  }
}

test('a revocation announced while the authorization is being read is not undone by that read', async () => {
  const inner = new GatedStore(
    new Map([
      ['bunker-1', auth(1, 'client')],
      ['bunker-2', auth(2, 'client')],
    ]),
  );
  const store = new CachedNip46Store(inner);
  const reading = store.findAuthorizations(['bunker-1', 'bunker-2']);
  await inner.waitForReads(1);
  inner.rows.set('bunker-1', auth(1, 'client', new Date()));
  store.evict('auth-1');
  inner.release();
  assert.equal((await reading).length, 2, 'the job that asked gets its read');
  const next = store.findAuthorizations(['bunker-1', 'bunker-2']);
  await inner.waitForReads(1);
  inner.release();
  const again = await next;
  assert.deepEqual(inner.reads[1], ['bunker-1'], 'the revoked one is read again, the other was cached');
  assert.ok(again.find((a) => a.id === 'auth-1')!.revokedAt instanceof Date, 'and seen revoked');
});

test('a clear or a dropped subscription during a read keeps that read out of the cache', async () => {
  for (const interrupt of [
    (s: CachedNip46Store) => s.clear(),
    (s: CachedNip46Store) => (s.setLinked(false), s.setLinked(true)),
  ]) {
    const inner = new GatedStore(new Map([['bunker-1', auth(1, 'client')]]));
    const store = new CachedNip46Store(inner);
    const reading = store.findAuthorizations(['bunker-1']);
    await inner.waitForReads(1);
    interrupt(store);
    inner.release();
    await reading;
    assert.equal(store.size, 0, `nothing cached after ${interrupt.toString()}`);
  }
});

test('while the eviction subscription is down nothing is cached, and what was cached is dropped', async () => {
  const inner = new CountingStore(new Map([['bunker-1', auth(1, 'client')]]));
  const store = new CachedNip46Store(inner);
  await store.findAuthorizations(['bunker-1']);
  assert.equal(store.size, 1);
  store.setLinked(false);
  assert.equal(store.size, 0, 'dropped when the subscription drops');
  await store.findAuthorizations(['bunker-1']);
  await store.findAuthorizations(['bunker-1']);
  assert.equal(inner.reads.length, 3, 'every job reads the table while unlinked');
  store.setLinked(true);
  await store.findAuthorizations(['bunker-1']);
  await store.findAuthorizations(['bunker-1']);
  assert.equal(inner.reads.length, 4, 'cached again once linked');
});

test('binding goes to the table and its answer comes back unchanged', async () => {
  const outcomes: boolean[] = [];
  const inner = new CountingStore(new Map());
  inner.bindClient = async () => outcomes.length % 2 === 0;
  const store = new CachedNip46Store(inner);
  outcomes.push(await store.bindClient('auth-1', Buffer.alloc(32), 'client'));
  outcomes.push(await store.bindClient('auth-1', Buffer.alloc(32), 'client'));
  assert.deepEqual(outcomes, [true, false]);
});

test('holds at most 100 000 authorizations by default', async () => {
  const n = 100_001;
  const rows = new Map<string, Nip46Authorization>();
  for (let i = 0; i < n; i++) rows.set(`bunker-${i}`, auth(i, 'client'));
  const store = new CachedNip46Store(new CountingStore(rows));
  await store.findAuthorizations([...rows.keys()]);
  assert.equal(store.size, 100_000);
});

test('keeps no bookkeeping for authorizations that left the cache, nor for reads that ended', async () => {
  // The revocation index and the reads in flight are private; an index that outgrew the LRU would hold
  // one entry per authorization ever cached, for the life of the worker.
  type Internals = { bunkerOf: Map<string, string>; loads: Set<unknown> };
  const rows = new Map<string, Nip46Authorization>();
  for (let i = 0; i < 10; i++) rows.set(`bunker-${i}`, auth(i, 'client'));
  const store = new CachedNip46Store(new CountingStore(rows), { max: 3 });
  await store.findAuthorizations([...rows.keys()]);
  const internals = store as unknown as Internals;
  assert.equal(store.size, 3);
  assert.equal(internals.bunkerOf.size, 3, 'an authorization pushed out of the LRU leaves the index too');
  assert.equal(internals.loads.size, 0, 'a finished read is no longer in flight');
  const failing = new CachedNip46Store({
    findAuthorizations: async () => {
      throw new Error('db down');
    },
  } as unknown as Nip46Store);
  await assert.rejects(failing.findAuthorizations(['bunker-1']), /db down/);
  assert.equal((failing as unknown as Internals).loads.size, 0, 'nor is a read that failed');
});
