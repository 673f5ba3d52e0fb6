// The local KeyManager's keyring: a new master key installed under running managers, the old one kept
// in the keyring, and both unwrapping everywhere without a restart.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { LocalKeyManager, MasterKeyFileError } from '../../shared/custody/local-key-manager.js';
import { installMasterKey } from '../../shared/custody/local-key-manager-install.js';
import { UnknownKekError } from '../../shared/custody/errors.js';
import { openSecret, ownerAad, sealSecret } from '../../shared/custody/envelope.js';

const waitFor = async (check: () => boolean, timeoutMs = 10_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('LocalKeyManager keyring and master key installation', () => {
  let dir: string;
  let n = 0;
  const fresh = () => path.join(dir, `case-${n++}`, 'master.key');
  const newKeyFile = async () => {
    const file = path.join(dir, `new-${n++}.key`);
    await writeFile(file, randomBytes(32), { mode: 0o600 });
    return file;
  };

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'kf-custody-keyring-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('swaps the active key under a running manager and keeps the old one unwrapping', async () => {
    const file = fresh();
    const running = await LocalKeyManager.open(file, { watchIntervalMs: 50 });
    const oldId = running.kekId;
    const aad = ownerAad('user', 'keyring-user');
    const secret = randomBytes(32);
    const sealedOld = await sealSecret(running, secret, aad);

    const installed = await installMasterKey(file, { file: await newKeyFile() });
    assert.equal(installed.changed, true);
    assert.equal(installed.previousKekId, oldId);
    assert.notEqual(installed.kekId, oldId);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.equal((await stat(installed.keyringFile!)).mode & 0o777, 0o600);
    assert.equal((await stat(running.keyringDir)).mode & 0o777, 0o700);
    assert.deepEqual(await readdir(running.keyringDir), [`${oldId.slice('local:'.length)}.key`]);

    // The running manager turns to the new key by itself and still opens the old row.
    await waitFor(() => running.kekId === installed.kekId);
    const sealedNew = await sealSecret(running, secret, aad);
    assert.equal(sealedNew.kekId, installed.kekId);
    assert.deepEqual(Buffer.from(await openSecret(running, sealedOld, aad)), secret);

    // A manager opened afterwards knows both from the files.
    const reopened = await LocalKeyManager.open(file, { watchIntervalMs: 0 });
    assert.equal(reopened.kekId, installed.kekId);
    assert.deepEqual(new Set(reopened.knownKekIds), new Set([oldId, installed.kekId]));
    assert.deepEqual(Buffer.from(await openSecret(reopened, sealedOld, aad)), secret);
    assert.deepEqual(Buffer.from(await openSecret(reopened, sealedNew, aad)), secret);
    await running.close();
    await reopened.close();
  });

  it('unwraps under a key installed after it opened, at once and without a watch', async () => {
    const file = fresh();
    const stale = await LocalKeyManager.open(file, { watchIntervalMs: 0 });
    const installed = await installMasterKey(file, { generate: true });
    const current = await LocalKeyManager.open(file, { watchIntervalMs: 0 });
    const aad = ownerAad('bunker', 'keyring-bunker');
    const secret = randomBytes(32);
    const sealed = await sealSecret(current, secret, aad);
    assert.equal(sealed.kekId, installed.kekId);
    assert.deepEqual(Buffer.from(await openSecret(stale, sealed, aad)), secret);
    assert.equal(stale.kekId, installed.kekId, 'the look at the files also switched the active key');
    await stale.close();
    await current.close();
  });

  it('is a no-op when the new key is already active, and refuses a missing or public new key file', async () => {
    const file = fresh();
    const km = await LocalKeyManager.open(file, { watchIntervalMs: 0 });
    const next = await newKeyFile();
    const first = await installMasterKey(file, { file: next });
    const again = await installMasterKey(file, { file: next });
    assert.equal(again.changed, false);
    assert.equal(again.kekId, first.kekId);
    assert.deepEqual(await readFile(file), await readFile(next));
    await assert.rejects(installMasterKey(file, { file: path.join(dir, 'absent.key') }), /head -c 32 \/dev\/urandom/);
    const open = await newKeyFile();
    await chmod(open, 0o644);
    await assert.rejects(installMasterKey(file, { file: open }), MasterKeyFileError);
    await assert.rejects(
      installMasterKey(path.join(dir, 'none', 'master.key'), { generate: true }),
      /nothing to rotate from/,
    );
    await km.close();
  });

  it('never forgets a key it held, and refuses a KEK no file holds', async () => {
    const file = fresh();
    const km = await LocalKeyManager.open(file, { watchIntervalMs: 0 });
    const aad = ownerAad('user', 'forget');
    const secret = randomBytes(32);
    const sealedOld = await sealSecret(km, secret, aad);
    const installed = await installMasterKey(file, { generate: true });
    await km.refresh();
    assert.equal(km.kekId, installed.kekId);
    await rm(installed.keyringFile!);
    await installMasterKey(file, { generate: true });
    await km.refresh();
    assert.deepEqual(Buffer.from(await openSecret(km, sealedOld, aad)), secret);
    const other = await LocalKeyManager.open(fresh(), { watchIntervalMs: 0 });
    await assert.rejects(other.unwrap(sealedOld.wrappedDek, sealedOld.kekId), (err: Error) => {
      assert.ok(err instanceof UnknownKekError);
      assert.match(err.message, /keyring .* does not hold it/);
      return true;
    });
    await km.close();
    await other.close();
  });

  it('refuses to open with a bad file in the keyring', async () => {
    const file = fresh();
    const km = await LocalKeyManager.open(file, { watchIntervalMs: 0 });
    await mkdir(km.keyringDir, { mode: 0o700 });
    await writeFile(path.join(km.keyringDir, 'short.key'), randomBytes(16), { mode: 0o600 });
    await assert.rejects(LocalKeyManager.open(file), /holds 16 bytes/);
    await km.close();
  });
});
