// The count of a policy's `max_uses` in PostgreSQL (database/queries/authorization-uses.ts): one statement
// takes a use for every process at once, the row goes with its authorization, and migration 0008 starts
// an authorization limited before it from its recorded uses.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import { loadMigrations, migrate } from '../../database/migrate.js';
import { takeAuthorizationUse } from '../../database/queries/authorization-uses.js';
import { createTestDatabase, testPool, type TestDatabase } from '../support/env.js';

const hex64 = () => randomBytes(32).toString('hex');

/** A user, its key, a policy (with `max_uses` when given) and an authorization under it; returns its id. */
async function authorization(db: pg.Pool, maxUses?: number): Promise<string> {
  const [userId, keyId, authId] = [randomUUID(), randomUUID(), randomUUID()];
  const slug = `p-${randomBytes(4).toString('hex')}`;
  await db.query(
    `INSERT INTO keys (id, owner_kind, owner_id, pubkey, ciphertext, nonce, wrapped_dek, kek_id)
     VALUES ($1, 'user', $2, $3, '\\x00', '\\x00', '\\x00', 'local:test')`,
    [keyId, userId, hex64()],
  );
  await db.query(`INSERT INTO users (id, email, password_hash, pubkey, key_id) VALUES ($1, $2, 'x', $3, $4)`, [
    userId,
    `${userId}@example.com`,
    hex64(),
    keyId,
  ]);
  const permissions = { allowed_kinds: [1], encrypt: false, decrypt: false, ...(maxUses ? { max_uses: maxUses } : {}) };
  await db.query(
    `INSERT INTO policies (slug, display_name, description, permissions, owner_user_id) VALUES ($1, $1, '', $2, $3)`,
    [slug, JSON.stringify(permissions), userId],
  );
  await db.query(
    `INSERT INTO authorizations (id, user_id, application_name, policy_slug, bunker_pubkey, bunker_key_id, secret_hash)
     VALUES ($1, $2, 'app', $3, $4, $5, '\\x00')`,
    [authId, userId, slug, hex64(), keyId],
  );
  return authId;
}

describe('authorization uses in PostgreSQL', () => {
  let database: TestDatabase;
  let db: pg.Pool;

  before(async () => {
    database = await createTestDatabase();
    db = testPool(database.url);
  });

  after(async () => {
    await db.end();
    await database.drop();
  });

  it('migration 0008 starts a limited authorization from its recorded uses, ping and get_public_key not counted', async () => {
    const all = loadMigrations();
    const before0008 = all.filter((m) => m.version < 8);
    assert.equal(before0008.length, all.length - 1, 'the uses table comes with migration 0008');
    await migrate(db, undefined, before0008);
    const limited = await authorization(db, 10);
    const unlimited = await authorization(db);
    for (const [id, methods] of [
      [limited, ['sign_event', 'sign_event', 'nip44_encrypt', 'ping', 'get_public_key']],
      [unlimited, ['sign_event']],
    ] as const)
      for (const method of methods)
        await db.query(`INSERT INTO signing_activity (authorization_id, method, door) VALUES ($1, $2, 'http')`, [
          id,
          method,
        ]);
    await migrate(db);
    const { rows } = await db.query('SELECT authorization_id, taken FROM authorization_uses');
    assert.deepEqual(rows, [{ authorization_id: limited, taken: 3 }]);
    // It goes on from there: 7 more of its 10.
    const taken = await Promise.all(Array.from({ length: 12 }, () => takeAuthorizationUse(db, limited, 10)));
    assert.equal(taken.filter(Boolean).length, 7);
  });

  it('attack: concurrent takes on several connections take at most the limit, and a refusal counts nothing', async () => {
    const id = await authorization(db, 25);
    const pools = [testPool(database.url), testPool(database.url)];
    try {
      const taken = await Promise.all(
        Array.from({ length: 80 }, (_, i) => takeAuthorizationUse(pools[i % 2]!, id, 25)),
      );
      assert.equal(taken.filter(Boolean).length, 25);
    } finally {
      await Promise.all(pools.map((p) => p.end()));
    }
    const { rows } = await db.query('SELECT taken FROM authorization_uses WHERE authorization_id = $1', [id]);
    assert.equal(rows[0].taken, 25);
    // A policy raised to 26 gives exactly one more.
    assert.equal(await takeAuthorizationUse(db, id, 26), true);
    assert.equal(await takeAuthorizationUse(db, id, 26), false);
    // Nonsense limits take nothing.
    for (const max of [0, -1, Number.NaN]) assert.equal(await takeAuthorizationUse(db, id, max), false);
  });

  it('the count goes with its authorization', async () => {
    const id = await authorization(db, 3);
    assert.equal(await takeAuthorizationUse(db, id, 3), true);
    await db.query('DELETE FROM authorizations WHERE id = $1', [id]);
    const { rowCount } = await db.query('SELECT 1 FROM authorization_uses WHERE authorization_id = $1', [id]);
    assert.equal(rowCount, 0);
  });
});
