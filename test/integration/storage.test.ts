// What lands in PostgreSQL and Redis: versioned migrations, hashes instead of secrets, sealed keys.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { bytesToHex } from '@noble/hashes/utils.js';
import { generateSecretKey, nip19 } from 'nostr-tools';
import { loadMigrations, migrate, MigrationError } from '../../database/migrate.js';
import type { Db } from '../../database/pool.js';
import { authorizeApp, call, registerUser, rpc } from '../support/client.js';
import { createTestDatabase, type TestDatabase, suiteRedis, scanKeys, testPool } from '../support/env.js';
import { startTestFarm, type TestFarm } from '../support/farm.js';
import { recordSecret } from '../support/logs.js';

const sha256 = (s: string) => createHash('sha256').update(s).digest();

describe('migrations', () => {
  let db: TestDatabase;
  let pool: Db;
  before(async () => {
    db = await createTestDatabase();
    pool = testPool(db.url);
  });
  after(async () => {
    await pool?.end();
    await db?.drop();
  });

  it('applies every migration once, records checksums, and seeds the four policies', async () => {
    const first = await migrate(pool);
    assert.equal(first, loadMigrations().length);
    assert.equal(await migrate(pool), 0, 'a second run applies nothing');
    const { rows } = await pool.query('SELECT version, checksum FROM schema_migrations ORDER BY version');
    assert.deepEqual(
      rows.map((r) => r.checksum),
      loadMigrations().map((m) => m.checksum),
    );
    const policies = await pool.query('SELECT slug FROM policies ORDER BY slug');
    assert.deepEqual(
      policies.rows.map((r) => r.slug),
      ['full', 'messaging', 'readonly', 'social', 'wallet'],
    );
  });

  it('refuses to run when an applied migration was edited', async () => {
    const edited = loadMigrations().map((m, i) => (i === 0 ? { ...m, checksum: 'edited' } : m));
    await assert.rejects(migrate(pool, undefined, edited), MigrationError);
  });

  it('runs concurrent migrators safely', async () => {
    const other = await createTestDatabase();
    const p = testPool(other.url);
    try {
      const counts = await Promise.all([migrate(p), migrate(p), migrate(p)]);
      assert.equal(
        counts.reduce((a, b) => a + b, 0),
        loadMigrations().length,
      );
    } finally {
      await p.end();
      await other.drop();
    }
  });
});

describe('secrets at rest', () => {
  let farm: TestFarm;
  before(async () => {
    farm = await startTestFarm('storage');
  });
  after(async () => farm?.stop());

  it('stores argon2id password hashes, token hashes and sealed keys, never the secrets', async () => {
    const sk = generateSecretKey();
    const hex = recordSecret(bytesToHex(sk));
    const nsec = recordSecret(nip19.nsecEncode(sk));
    const user = await registerUser(farm.url, { nsec });
    const app = await authorizeApp(farm.url, user.session, 'full');
    assert.equal(
      (await rpc(farm.url, app.access_token, 'sign_event', [{ kind: 1, content: 'x', tags: [], created_at: 1 }]))
        .status,
      200,
    );

    const db = farm.rt.db;
    const {
      rows: [u],
    } = await db.query('SELECT password_hash, key_id FROM users WHERE pubkey = $1', [user.pubkey]);
    assert.match(u.password_hash, /^\$argon2id\$/);
    const {
      rows: [k],
    } = await db.query('SELECT * FROM keys WHERE id = $1', [u.key_id]);
    assert.equal(k.owner_kind, 'user');
    assert.ok(!k.ciphertext.includes(Buffer.from(sk)), 'the key is not stored in the clear');
    assert.match(k.kek_id, /^local:/);
    assert.equal((await db.query('SELECT 1 FROM sessions WHERE token_hash = $1', [sha256(user.session)])).rowCount, 1);
    assert.equal(
      (
        await db.query('SELECT 1 FROM oauth_tokens WHERE access_hash = $1 AND refresh_hash = $2', [
          sha256(app.access_token),
          sha256(app.refresh_token),
        ])
      ).rowCount,
      1,
    );
    assert.equal(
      (await db.query('SELECT 1 FROM oauth_codes WHERE code_hash = $1 AND used_at IS NOT NULL', [sha256(app.code)]))
        .rowCount,
      1,
    );

    // Nothing in the database's text form holds a secret the test made.
    const dump = await db.query(`SELECT string_agg(t::text, '\n') AS all FROM (
      SELECT row_to_json(users)::text AS t FROM users UNION ALL SELECT row_to_json(keys)::text FROM keys
      UNION ALL SELECT row_to_json(sessions)::text FROM sessions UNION ALL SELECT row_to_json(oauth_tokens)::text FROM oauth_tokens
      UNION ALL SELECT row_to_json(authorizations)::text FROM authorizations) x`);
    for (const secret of [hex, nsec, user.password, user.session, app.access_token, app.refresh_token, app.code]) {
      assert.ok(!dump.rows[0].all.includes(secret), 'a secret is stored in the clear');
    }
  });

  it('keeps no secret in Redis, and every shard key carries its shard hash tag', async () => {
    const sk = generateSecretKey();
    const hex = recordSecret(bytesToHex(sk));
    const user = await registerUser(farm.url, { nsec: hex });
    const app = await authorizeApp(farm.url, user.session, 'full');
    await rpc(farm.url, app.access_token, 'sign_event', [{ kind: 1, content: 'redis check', tags: [], created_at: 1 }]);
    await rpc(farm.url, app.access_token, 'nip44_encrypt', [
      '79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798',
      'hello',
    ]);
    const redis = suiteRedis();
    try {
      const keys = await scanKeys(redis, `${farm.config.KEY_PREFIX}:*`);
      assert.ok(keys.length > 0);
      const secrets = [hex, nip19.nsecEncode(sk), user.password, user.session, app.access_token, app.refresh_token];
      for (const key of keys) {
        // {shard-N}, or on a cluster {shard-N.k}: a tag spread over the slots (spreadShardTags).
        if (key.includes('{shard-'))
          assert.match(key, new RegExp(`^${farm.config.KEY_PREFIX}:\\{shard-\\d+(\\.\\d+)?\\}:`), key);
        const type = await redis.type(key);
        const dumped =
          type === 'string'
            ? await redis.get(key)
            : type === 'hash'
              ? JSON.stringify(await redis.hgetall(key))
              : type === 'list'
                ? JSON.stringify(await redis.lrange(key, 0, -1))
                : type === 'zset'
                  ? JSON.stringify(await redis.zrange(key, 0, -1))
                  : type === 'set'
                    ? JSON.stringify(await redis.smembers(key))
                    : type === 'stream'
                      ? JSON.stringify(await redis.xrange(key, '-', '+'))
                      : '';
        for (const s of secrets) assert.ok(!String(dumped).includes(s), `secret found in Redis key ${key}`);
      }
    } finally {
      redis.disconnect();
    }
  });

  it('lets an OAuth code expire after 10 minutes', async () => {
    const user = await registerUser(farm.url);
    const auth = await call(
      farm.url,
      'POST',
      '/api/oauth/authorize',
      { client_id: 'c', redirect_uri: 'https://app.example/cb', scope: 'policy:social', approved: true },
      user.session,
    );
    recordSecret(auth.body.code);
    const { rows } = await farm.rt.db.query(
      'SELECT extract(epoch FROM expires_at - created_at)::float AS ttl FROM oauth_codes WHERE code_hash = $1',
      [sha256(auth.body.code)],
    );
    assert.ok(Math.abs(rows[0].ttl - 600) < 5, `code lifetime ${rows[0].ttl} s`);
    await farm.rt.db.query("UPDATE oauth_codes SET expires_at = now() - interval '1 second' WHERE code_hash = $1", [
      sha256(auth.body.code),
    ]);
    const res = await call(farm.url, 'POST', '/api/oauth/token', {
      grant_type: 'authorization_code',
      code: auth.body.code,
      client_id: 'c',
      redirect_uri: 'https://app.example/cb',
    });
    assert.equal(res.body.error, 'invalid_grant');
  });
});
