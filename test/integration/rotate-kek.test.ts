// KEK rotation under a running farm: 500 users and 300 authorizations' bunker keys, `keyfarm rotate-kek`
// killed with SIGKILL half way and run again, while an api and a workers process keep registering users
// and signing. Afterwards every row is under the new KEK, every key opens with the new master key alone
// to the pubkey it had, and the farm still signs, before and after a restart.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { verifyEvent } from 'nostr-tools';
import { migrate } from '../../database/migrate.js';
import { inTransaction, type Db } from '../../database/pool.js';
import { insertAuthorization } from '../../database/queries/authorizations.js';
import { countKeysByKek } from '../../database/queries/keys.js';
import { insertUser, setUserKey } from '../../database/queries/users.js';
import { KeyStore } from '../../shared/custody/key-store.js';
import { LocalKeyManager } from '../../shared/custody/local-key-manager.js';
import { generateSecretKey, getPublicKeyHex } from '../../shared/nostr/keys.js';
import { authorizeApp, registerUser, rpc } from '../support/client.js';
import { baseTestEnv, createTestDatabase, freePort, testPool, type TestDatabase } from '../support/env.js';
import { recordSecret } from '../support/logs.js';
import { spawnKeyfarm, stopAllKeyfarms, type KeyfarmProcess } from '../support/processes.js';
import { recordDatabaseKeys } from '../support/stored-keys.js';

const SEEDED_USERS = 500;
const SEEDED_AUTHORIZATIONS = 300;

const note = (content: string) => ({ kind: 1, content, tags: [], created_at: Math.floor(Date.now() / 1000) });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function recordKey(key: Uint8Array): void {
  recordSecret(Buffer.from(key).toString('hex'));
  recordSecret(Buffer.from(key).toString('base64'));
}

/** Users and bunker keys written straight to the tables (registering 500 over HTTP would be argon2 all the way). */
async function seed(pool: Db, store: KeyStore): Promise<Map<string, string>> {
  const pubkeyOfKey = new Map<string, string>();
  const userIds: string[] = [];
  for (let start = 0; start < SEEDED_USERS; start += 50) {
    await inTransaction(pool, async (tx) => {
      for (let i = start; i < Math.min(start + 50, SEEDED_USERS); i++) {
        const sk = generateSecretKey();
        recordKey(sk);
        const userId = randomUUID();
        const pubkey = getPublicKeyHex(sk);
        await insertUser(tx, {
          id: userId,
          email: `seed-${i}-${userId}@example.com`,
          passwordHash: 'seeded-no-login',
          pubkey,
        });
        const key = await store.create(tx, 'user', userId, sk);
        await setUserKey(tx, userId, key.keyId);
        pubkeyOfKey.set(key.keyId, key.pubkey);
        userIds.push(userId);
        sk.fill(0);
      }
    });
  }
  await inTransaction(pool, async (tx) => {
    for (let i = 0; i < SEEDED_AUTHORIZATIONS; i++) {
      const sk = generateSecretKey();
      recordKey(sk);
      const authorizationId = randomUUID();
      const key = await store.create(tx, 'bunker', authorizationId, sk);
      await insertAuthorization(tx, {
        id: authorizationId,
        userId: userIds[i % userIds.length]!,
        applicationName: `seeded app ${i}`,
        policySlug: 'full',
        bunkerPubkey: key.pubkey,
        bunkerKeyId: key.keyId,
        secretHash: randomBytes(32),
        relays: [],
      });
      pubkeyOfKey.set(key.keyId, key.pubkey);
      sk.fill(0);
    }
  });
  return pubkeyOfKey;
}

interface AppUser {
  pubkey: string;
  token: string;
}

async function appUser(base: string): Promise<AppUser> {
  const user = await registerUser(base);
  const { access_token: token } = await authorizeApp(base, user.session, 'full');
  return { pubkey: user.pubkey, token };
}

async function signsAs(base: string, user: AppUser, content: string): Promise<void> {
  const res = await rpc(base, user.token, 'sign_event', [note(content)]);
  assert.equal(res.status, 200, `sign_event: ${res.status} ${JSON.stringify(res.body)}`);
  assert.equal(res.body.result.pubkey, user.pubkey);
  assert.ok(verifyEvent(res.body.result), 'the signature verifies');
}

function output(proc: KeyfarmProcess): string {
  return readFileSync(proc.logFile, 'utf8');
}

describe('keyfarm rotate-kek', () => {
  let db: TestDatabase;
  let pool: Db;
  let env: Record<string, string>;
  let masterKeyPath: string;

  before(async () => {
    db = await createTestDatabase();
    pool = testPool(db.url);
    await migrate(pool);
    // No key prefetch: the cold users' keys must first load mid-rotation, when they sign.
    env = baseTestEnv({ DATABASE_URL: db.url, SHARD_COUNT: '4', LOG_LEVEL: 'info', KEY_PREFETCH_MAX_INFLIGHT: '0' });
    masterKeyPath = path.join(env.DATA_DIR!, 'master.key');
  });
  after(async () => {
    await stopAllKeyfarms();
    await pool?.end();
    try {
      // Every key the processes held, as the last rotation left them, goes to the secret scan.
      if (env) await recordDatabaseKeys(env);
    } finally {
      await db?.drop().catch(() => undefined);
    }
  });

  it('re-wraps every key under the new KEK while the farm runs, resuming after a kill -9', async (t) => {
    const started = Date.now();
    const phase = (name: string) => t.diagnostic(`${name} at ${((Date.now() - started) / 1000).toFixed(1)} s`);
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const farmEnv = { ...env, PORT: String(port) };
    const api = await spawnKeyfarm('api', farmEnv, { name: 'api', ready: { url: `${base}/health` } });
    let workers = await spawnKeyfarm('workers', farmEnv, { name: 'workers', ready: { log: /keyfarm started/ } });

    const oldKm = await LocalKeyManager.open(masterKeyPath, { watchIntervalMs: 0 });
    const oldKekId = oldKm.kekId;
    recordKey(readFileSync(masterKeyPath));
    const pubkeyOfKey = await seed(pool, new KeyStore(oldKm));
    phase('seeded');
    await oldKm.close();

    // Warm users sign before, during and after; cold ones first sign mid-way and after the rotation,
    // so their keys are loaded from rows the workers never saw under the new KEK.
    const warm = await Promise.all(Array.from({ length: 3 }, () => appUser(base)));
    const coldMid = await Promise.all(Array.from({ length: 2 }, () => appUser(base)));
    const coldAfter = await Promise.all(Array.from({ length: 2 }, () => appUser(base)));
    for (const u of warm) await signsAs(base, u, 'before');
    phase('users registered');

    const newKeyFile = path.join(env.DATA_DIR!, 'next-master.key');
    const newKey = randomBytes(32);
    recordKey(newKey);
    await writeFile(newKeyFile, newKey, { mode: 0o600 });

    let loading = true;
    const failures: string[] = [];
    let signed = 0;
    let registered = 0;
    const signLoop = (async () => {
      for (let i = 0; loading; i++) {
        await signsAs(base, warm[i % warm.length]!, `during ${i}`).then(
          () => signed++,
          (err: Error) => failures.push(err.message),
        );
      }
    })();
    const registerLoop = (async () => {
      while (loading) {
        await registerUser(base).then(
          () => registered++,
          (err: Error) => failures.push(err.message),
        );
        await sleep(150);
      }
    })();

    const rotateArgs = ['--new-master-key', newKeyFile, '--batch-size', '10', '--pause-ms', '40'];
    const first = await spawnKeyfarm('rotate-kek', env, { name: 'rotate-first', args: rotateArgs });
    await first.waitForLog(/keys re-wrapped \((3|4|5|6)\d%\)/, 60_000);
    first.kill('SIGKILL');
    phase('first run killed');
    assert.equal((await first.exited).signal, 'SIGKILL', 'the first run was killed, not finished');
    const midway = await countKeysByKek(pool);
    assert.ok(
      (midway.get(oldKekId) ?? 0) > 0,
      `rows left under the old KEK after the kill: ${JSON.stringify([...midway])}`,
    );
    assert.ok(midway.size === 2, `rows under both KEKs after the kill: ${JSON.stringify([...midway])}`);
    for (const u of coldMid) await signsAs(base, u, 'mid-rotation, cold');

    const second = await spawnKeyfarm('rotate-kek', env, { name: 'rotate-second', args: rotateArgs });
    assert.equal((await second.exited).code, 0, output(second));
    phase('second run done');
    loading = false;
    await Promise.all([signLoop, registerLoop]);
    assert.deepEqual(failures, [], 'every request during the rotation succeeded');
    assert.ok(
      signed > 0 && registered > 0,
      `load ran during the rotation (${signed} signed, ${registered} registered)`,
    );

    // The process has exited: its lines are all there (waitForLog reads only this run's output).
    const line = (proc: KeyfarmProcess, pattern: RegExp) => proc.waitForLog(pattern, 1000);
    await line(second, /already the active one; finishing the rotation/);
    const final = /re-wrapped (\d+) keys, (\d+) already current/.exec(await line(second, /re-wrapped \d+ keys/))!;
    const newKekId = await LocalKeyManager.open(masterKeyPath, { watchIntervalMs: 0 }).then(
      async (km) => (await km.close(), km.kekId),
    );
    assert.notEqual(newKekId, oldKekId);
    const byKek = await countKeysByKek(pool);
    assert.deepEqual([...byKek.keys()], [newKekId], 'no row is left under the old KEK');
    const payloadKeys = await pool.query<{ kekId: string }>('SELECT kek_id AS "kekId" FROM payload_keys');
    assert.deepEqual(payloadKeys.rows, [{ kekId: newKekId }], 'the farm payload key moved too');
    const total = byKek.get(newKekId)!;
    assert.ok(Number(final[1]) > 0 && Number(final[2]) > 0, final[0]);
    // Users registered after the run ended are not in its count: it must add up to its own final tally.
    const tally = /: (\d+) keys \(active\)/.exec(
      await line(second, new RegExp(`^KEK ${newKekId}: \\d+ keys \\(active\\)`)),
    )!;
    assert.equal(Number(final[1]) + Number(final[2]), Number(tally[1]), `${final[0]} accounts for every key`);
    assert.ok(Number(tally[1]) <= total);

    // Run again: nothing to do, and it says so.
    const third = await spawnKeyfarm('rotate-kek', env, { name: 'rotate-third' });
    assert.equal((await third.exited).code, 0, output(third));
    phase('third run done');
    await line(third, new RegExp(`^re-wrapped 0 keys, ${total} already current`));

    // The old KEK is no longer needed: without it, every key opens to the pubkey it had.
    await rm(`${masterKeyPath}.keyring`, { recursive: true });
    const newKm = await LocalKeyManager.open(masterKeyPath, { watchIntervalMs: 0 });
    assert.deepEqual(newKm.knownKekIds, [newKekId]);
    const store = new KeyStore(newKm);
    const { rows } = await pool.query<{ id: string; pubkey: string }>('SELECT id, pubkey FROM keys');
    assert.equal(rows.length, total);
    for (const row of rows) {
      const opened = await store.open(pool, row.id);
      assert.equal(getPublicKeyHex(opened.secretKey), row.pubkey);
      opened.secretKey.fill(0);
      const seeded = pubkeyOfKey.get(row.id);
      if (seeded !== undefined) assert.equal(row.pubkey, seeded);
    }
    assert.equal(rows.filter((r) => pubkeyOfKey.has(r.id)).length, SEEDED_USERS + SEEDED_AUTHORIZATIONS);
    await newKm.close();
    phase('every key opened');

    // The running farm signs for keys it has not loaded yet, and after a restart with the new key alone.
    for (const u of coldAfter) await signsAs(base, u, 'after rotation, cold');
    await workers.stop();
    workers = await spawnKeyfarm('workers', farmEnv, { name: 'workers-after', ready: { log: /keyfarm started/ } });
    for (const u of [...warm, ...coldMid]) await signsAs(base, u, 'after restart');
    await Promise.all([api.stop(), workers.stop()]);
  });
});
