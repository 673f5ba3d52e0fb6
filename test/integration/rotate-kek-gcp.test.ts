// KEK rotation with Cloud KMS (the real client against the fake KMS server): `keyfarm rotate-kek` with
// GCP_KMS_KEY set to a new key moves every row to it; a row no KEK here can open is reported and left
// alone; a KMS outage mid-run rolls back the batch in hand and a rerun finishes; two runs at once are refused.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { migrate } from '../../database/migrate.js';
import { inTransaction, type Db } from '../../database/pool.js';
import { countKeysByKek, insertKey } from '../../database/queries/keys.js';
import { GcpKeyManager } from '../../shared/custody/gcp-key-manager.js';
import { KeyManagerUnavailableError } from '../../shared/custody/key-manager.js';
import { KeyStore } from '../../shared/custody/key-store.js';
import { RotationRefusedError, rotateKek } from '../../shared/custody/rotate-kek.js';
import { generateSecretKey, getPublicKeyHex } from '../../shared/nostr/keys.js';
import { baseTestEnv, createTestDatabase, testPool, type TestDatabase } from '../support/env.js';
import { startFakeKms, type FakeKms } from '../support/fake-kms.js';
import { recordSecret } from '../support/logs.js';
import { spawnKeyfarm } from '../support/processes.js';

// Were anything to look for Application Default Credentials, it would find this and fail.
process.env.GOOGLE_APPLICATION_CREDENTIALS = '/nonexistent/keyfarm-test-credentials.json';

const KEY_A = 'projects/keyfarm-test/locations/global/keyRings/custody/cryptoKeys/kek-a';
const KEY_B = 'projects/keyfarm-test/locations/global/keyRings/custody/cryptoKeys/kek-b';
const KEY_C = 'projects/keyfarm-test/locations/global/keyRings/custody/cryptoKeys/kek-c';

describe('rotate-kek with Cloud KMS', () => {
  let kms: FakeKms;
  let db: TestDatabase;
  let pool: Db;
  const pubkeys = new Map<string, string>();

  async function seed(km: GcpKeyManager, n: number): Promise<void> {
    const store = new KeyStore(km);
    await inTransaction(pool, async (tx) => {
      for (let i = 0; i < n; i++) {
        const sk = generateSecretKey();
        recordSecret(Buffer.from(sk).toString('hex'));
        const { keyId, pubkey } = await store.create(tx, 'user', randomUUID(), sk);
        pubkeys.set(keyId, pubkey);
        sk.fill(0);
      }
    });
  }

  async function assertAllOpen(keyName: string): Promise<void> {
    const km = new GcpKeyManager({ keyName, endpoint: kms.endpoint });
    const store = new KeyStore(km);
    try {
      for (const [keyId, pubkey] of pubkeys) {
        const opened = await store.open(pool, keyId);
        assert.equal(getPublicKeyHex(opened.secretKey), pubkey);
        opened.secretKey.fill(0);
      }
    } finally {
      await km.close();
    }
  }

  before(async () => {
    kms = await startFakeKms();
    db = await createTestDatabase();
    pool = testPool(db.url);
    await migrate(pool);
  });
  after(async () => {
    await pool?.end();
    await db?.drop().catch(() => undefined);
    await kms?.close();
  });

  it('moves every row to the key GCP_KMS_KEY names, reporting the one it cannot open', async () => {
    const kmA = new GcpKeyManager({ keyName: KEY_A, endpoint: kms.endpoint });
    await seed(kmA, 40);
    await kmA.close();
    // A row sealed under a local master key this deployment does not have.
    await insertKey(pool, {
      id: randomUUID(),
      ownerKind: 'user',
      ownerId: randomUUID(),
      pubkey: '0'.repeat(64),
      ciphertext: Buffer.alloc(48),
      nonce: Buffer.alloc(12),
      wrappedDek: Buffer.alloc(60),
      kekId: 'local:00000000deadbeef',
    });

    const env = baseTestEnv({
      DATABASE_URL: db.url,
      GCP_KMS_KEY: KEY_B,
      GCP_KMS_ENDPOINT: kms.endpoint,
      LOG_LEVEL: 'info',
    });
    const run = await spawnKeyfarm('rotate-kek', env, { name: 'rotate-gcp', args: ['--batch-size', '7'] });
    assert.equal((await run.exited).code, 1, 'a key left behind makes the run fail');
    await run.waitForLog(/^re-wrapped 40 keys, 0 already current$/, 1000);
    await run.waitForLog(/^1 keys could not be re-wrapped and stay under their old KEK:/, 1000);
    await run.waitForLog(
      /^ {2}key \S+ \(KEK local:00000000deadbeef\): SecretDecryptionError: .* \(UnknownKekError: unknown KEK local:00000000deadbeef/,
      1000,
    );
    assert.deepEqual(Object.fromEntries(await countKeysByKek(pool)), { [KEY_B]: 40, 'local:00000000deadbeef': 1 });
    await assertAllOpen(KEY_B);
    await pool.query("DELETE FROM keys WHERE kek_id = 'local:00000000deadbeef'");
  });

  it('rolls back the batch in hand when the KMS fails, and a rerun finishes', async () => {
    const km = new GcpKeyManager({ keyName: KEY_C, endpoint: kms.endpoint, retryDelaysMs: [10] });
    try {
      let failed = false;
      const run = rotateKek({
        db: pool,
        km,
        batchSize: 5,
        onProgress: (p) => {
          if (!failed && p.rewrapped >= 10) {
            failed = true;
            kms.failNext(2); // both attempts of the next call
          }
        },
      });
      await assert.rejects(run, KeyManagerUnavailableError);
      const midway = await countKeysByKek(pool);
      assert.equal((midway.get(KEY_C) ?? 0) % 5, 0, 'only whole batches were committed');
      assert.ok((midway.get(KEY_B) ?? 0) > 0);
      const again = await rotateKek({ db: pool, km, batchSize: 5 });
      assert.equal(again.rewrapped + (midway.get(KEY_C) ?? 0), 40);
      assert.equal(again.alreadyCurrent, midway.get(KEY_C) ?? 0);
      assert.deepEqual([...again.byKek.keys()], [KEY_C]);
    } finally {
      await km.close();
    }
    await assertAllOpen(KEY_C);
  });

  it('refuses a second run while one is going', async () => {
    const km = new GcpKeyManager({ keyName: KEY_A, endpoint: kms.endpoint });
    try {
      let second: Promise<unknown> | undefined; // settles to the error it was refused with
      const first = rotateKek({
        db: pool,
        km,
        batchSize: 5,
        pauseMs: 50,
        onProgress: (p) => {
          if (p.done > 0 && !second)
            second = rotateKek({ db: pool, km, batchSize: 5, lockWaitMs: 0 }).then(
              () => 'ran',
              (err: unknown) => err,
            );
        },
      });
      const result = await first;
      assert.ok((await second) instanceof RotationRefusedError, 'the second run was refused');
      assert.equal(result.rewrapped, 40);
    } finally {
      await km.close();
    }
    await assertAllOpen(KEY_A);
  });
});
