// Disaster-recovery drill: a running farm (processes, a real relay for NIP-46) is backed up with
// `keyfarm backup`, stopped, its database dropped and its data dir (master key included) wiped; the
// master key comes back from its own copy, the database from `keyfarm restore`, and the farm starts again
// on an empty Redis namespace. The same users log in with the same pubkeys, and the access tokens, the
// sessions and the bunker authorization issued before the backup still work and sign.
import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { bytesToHex } from '@noble/hashes/utils.js';
import { generateSecretKey, verifyEvent } from 'nostr-tools';
import { parseBunkerInput } from 'nostr-tools/nip46';
import { useWebSocketImplementation } from 'nostr-tools/pool';
import pg from 'pg';
import WebSocket from 'ws';
import { authorizeApp, call, registerUser, rpc } from '../support/client.js';
import {
  baseTestEnv,
  createTestDatabase,
  databaseUrl,
  freePort,
  testDataDir,
  testKeyPrefix,
  type TestDatabase,
  migrateDatabase,
} from '../support/env.js';
import { recordSecret } from '../support/logs.js';
import { spawnKeyfarm, stopAllKeyfarms, type KeyfarmProcess } from '../support/processes.js';
import { startTestRelay, type TestRelay } from '../support/relay.js';
import { recordDatabaseKeys } from '../support/stored-keys.js';
import { BunkerClients } from '../support/bunker.js';
import { within } from '../support/wait.js';

useWebSocketImplementation(WebSocket);

const note = (content: string) => ({ kind: 1, content, tags: [], created_at: Math.floor(Date.now() / 1000) });

/** Runs a keyfarm operator command to its end; resolves with its exit code and the process (for its lines). */
async function command(
  env: Record<string, string>,
  name: string,
  args: string[],
): Promise<{ code: number | null; proc: KeyfarmProcess }> {
  const proc = await spawnKeyfarm(args[0]!, env, { name, args: args.slice(1) });
  const { code } = await proc.exited;
  return { code, proc };
}

const line = (proc: KeyfarmProcess, pattern: RegExp) => proc.waitForLog(pattern, 1000);

async function recreateDatabase(name: string): Promise<void> {
  const admin = new pg.Client({ connectionString: databaseUrl() });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE ${name} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
}

describe('backup and restore drill', () => {
  let db: TestDatabase;
  let relay: TestRelay;
  const clients = new BunkerClients();

  before(async () => {
    relay = await startTestRelay();
    db = await createTestDatabase();
    await migrateDatabase(db.url);
  });
  after(async () => {
    await clients.close();
    await stopAllKeyfarms();
    await relay?.stop();
    await db?.drop().catch(() => undefined);
  });

  it('users, keys and authorizations survive a stop, a wipe and a restore, and sign afterwards', async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const env = baseTestEnv({ DATABASE_URL: db.url, PORT: String(port), BUNKER_RELAYS: relay.url, LOG_LEVEL: 'info' });
    const masterKeyPath = path.join(env.DATA_DIR!, 'master.key');
    const farmBefore = await spawnKeyfarm('all', env, { name: 'all-before', ready: { url: `${base}/health` } });

    const users = await Promise.all(Array.from({ length: 3 }, () => registerUser(base)));
    const tokens = await Promise.all(
      users.map(async (u, i) => (await authorizeApp(base, u.session, i === 0 ? 'messaging' : 'full')).access_token),
    );
    for (const [i, u] of users.entries()) {
      const signed = await rpc(base, tokens[i]!, 'sign_event', [{ ...note('before the backup'), kind: 14 }]);
      assert.equal(signed.status, 200, JSON.stringify(signed.body));
      assert.equal(signed.body.result.pubkey, u.pubkey);
    }
    // A bunker authorization, connected and bound to its client before the backup.
    const bunker = await call(base, 'POST', '/api/user/bunker/create', { app_name: 'drill app' }, users[1]!.session);
    assert.equal(bunker.status, 201, JSON.stringify(bunker.body));
    const bp = (await parseBunkerInput(bunker.body.bunker_url))!;
    recordSecret(bp.secret!);
    const clientSecret = generateSecretKey();
    recordSecret(bytesToHex(clientSecret));
    const first = clients.signer(bp, { sk: clientSecret });
    await within(10_000, first.connect(), 'connect');
    const overRelay = await within(10_000, first.signEvent(note('bunker, before')), 'bunker sign_event');
    assert.equal(overRelay.pubkey, users[1]!.pubkey);

    // Backup of the running farm.
    const backupDir = testDataDir();
    const file = path.join(backupDir, 'drill.dump');
    const backup = await command(env, 'backup', ['backup', '--out', file]);
    assert.equal(backup.code, 0);
    await line(backup.proc, /^backup written: .*drill\.dump/);
    const contains = await line(
      backup.proc,
      /^contains: 3 users, 7 keys, 4 authorizations; keys wrapped under KEK local:[0-9a-f]{16} \(7\)$/,
    );
    await line(backup.proc, /^NOT in the backup: the KEKs\..*master key file/);
    assert.equal((await stat(file)).mode & 0o777, 0o600);

    // The master key is kept apart from the dump, as the backup's output says.
    const keyCopy = path.join(backupDir, 'master.key.copy');
    await copyFile(masterKeyPath, keyCopy);
    recordSecret((await readFile(keyCopy)).toString('hex'));

    // Stop everything; a restore over a database that holds users is refused without --yes.
    await first.close();
    await farmBefore.stop();
    const refused = await command(env, 'restore-refused', ['restore', file]);
    assert.equal(refused.code, 1);
    await line(refused.proc, /holds 3 users; restoring replaces all of it\. Run again with --yes/);

    // The disaster: database dropped, data dir (master key included) gone.
    await recreateDatabase(db.name);
    await rm(env.DATA_DIR!, { recursive: true, force: true });
    await mkdir(env.DATA_DIR!, { recursive: true });

    const restored = await command(env, 'restore', ['restore', file]);
    assert.equal(restored.code, 0);
    await line(restored.proc, /^restored .*drill\.dump/);
    assert.equal(await line(restored.proc, /^contains: /), contains, 'the restored database holds what the backup did');
    await line(restored.proc, /^WARNING: MASTER_KEY_PATH .* do not hold KEK local:[0-9a-f]{16}/);
    await copyFile(keyCopy, masterKeyPath);

    // The farm again, on an empty Redis namespace.
    const farmAfter = await spawnKeyfarm(
      'all',
      { ...env, KEY_PREFIX: testKeyPrefix() },
      { name: 'all-after', ready: { url: `${base}/health` } },
    );
    for (const [i, u] of users.entries()) {
      const login = await call(base, 'POST', '/api/auth/login', { email: u.email, password: u.password });
      assert.equal(login.status, 200, JSON.stringify(login.body));
      assert.equal(login.body.pubkey, u.pubkey);
      recordSecret(login.body.token);
      const sessions = await call(base, 'GET', '/api/user/sessions', undefined, u.session);
      assert.equal(sessions.status, 200, 'the session from before the backup is still valid');
      const signed = await rpc(base, tokens[i]!, 'sign_event', [{ ...note('after the restore'), kind: 14 }]);
      assert.equal(signed.status, 200, JSON.stringify(signed.body));
      assert.equal(signed.body.result.pubkey, u.pubkey);
      assert.ok(verifyEvent(signed.body.result));
    }
    const denied = await rpc(base, tokens[0]!, 'sign_event', [note('kind 1 is not messaging')]);
    assert.equal(denied.status, 403, 'the restored authorization keeps its policy');

    // The bound bunker client carries on without a new connect.
    const again = clients.signer(bp, { sk: clientSecret });
    const afterRestore = await within(
      15_000,
      again.signEvent(note('bunker, after')),
      'bunker sign_event after restore',
    );
    assert.equal(afterRestore.pubkey, users[1]!.pubkey);
    assert.ok(verifyEvent(afterRestore));
    await again.close();
    await farmAfter.stop();
    // Every key the farm held (its bunker keys too) goes to the secret scan.
    await recordDatabaseKeys(env);
  });
});
