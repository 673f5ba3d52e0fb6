import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { LocalKeyManager, MasterKeyFileError } from '../../shared/custody/local-key-manager.js';
import { UnknownKekError } from '../../shared/custody/errors.js';
import { openSecret, ownerAad, sealSecret } from '../../shared/custody/envelope.js';

describe('LocalKeyManager', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'kf-custody-local-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('creates the master key file (mode 0600, new directories 0700) and reuses it on reopen', async () => {
    const file = path.join(dir, 'fresh', 'nested', 'master.key');
    const first = await LocalKeyManager.open(file);
    const fileStat = await stat(file);
    assert.equal(fileStat.mode & 0o777, 0o600);
    assert.equal(fileStat.size, 32);
    assert.equal((await stat(path.dirname(file))).mode & 0o777, 0o700);
    assert.equal((await stat(path.join(dir, 'fresh'))).mode & 0o777, 0o700);
    assert.match(first.kekId, /^local:[0-9a-f]{16}$/);
    const key = await readFile(file);
    assert.equal(first.kekId.includes(key.toString('hex').slice(0, 16)), false);

    const secret = randomBytes(32);
    const aad = ownerAad('user', 'u1');
    const sealed = await sealSecret(first, secret, aad);
    await first.close();

    const again = await LocalKeyManager.open(file);
    assert.equal(again.kekId, first.kekId);
    assert.deepEqual(await readFile(file), key);
    assert.deepEqual(Buffer.from(await openSecret(again, sealed, aad)), secret);
    await again.close();
  });

  it('gives different master keys different KEK ids, and refuses the other one', async () => {
    const a = await LocalKeyManager.open(path.join(dir, 'one.key'));
    const b = await LocalKeyManager.open(path.join(dir, 'two.key'));
    assert.notEqual(a.kekId, b.kekId);
    const wrapped = await a.wrap(randomBytes(32));
    await assert.rejects(b.unwrap(wrapped, a.kekId), (err: Error) => {
      assert.ok(err instanceof UnknownKekError);
      assert.match(err.message, new RegExp(`unknown KEK ${a.kekId}`));
      return true;
    });
    await a.close();
    await b.close();
  });

  it('agrees on one key when several processes start at once', async () => {
    const file = path.join(dir, 'race', 'master.key');
    const managers = await Promise.all(Array.from({ length: 6 }, () => LocalKeyManager.open(file)));
    assert.equal(new Set(managers.map((m) => m.kekId)).size, 1);
    await Promise.all(managers.map((m) => m.close()));
  });

  it('refuses a file of the wrong size', async () => {
    for (const size of [0, 31, 33, 64]) {
      const file = path.join(dir, `size-${size}.key`);
      await writeFile(file, randomBytes(size), { mode: 0o600 });
      await assert.rejects(LocalKeyManager.open(file), (err: Error) => {
        assert.ok(err instanceof MasterKeyFileError);
        assert.match(err.message, new RegExp(`holds ${size} bytes, expected exactly 32`));
        return true;
      });
    }
  });

  it('refuses a file readable or writable by group or others', async () => {
    for (const mode of [0o640, 0o604, 0o644, 0o660, 0o602]) {
      const file = path.join(dir, `mode-${mode.toString(8)}.key`);
      await writeFile(file, randomBytes(32), { mode: 0o600 });
      await chmod(file, mode);
      await assert.rejects(LocalKeyManager.open(file), (err: Error) => {
        assert.ok(err instanceof MasterKeyFileError);
        assert.match(err.message, /accessible by group or others/);
        assert.match(err.message, /chmod 600/);
        return true;
      });
    }
  });

  it('refuses a symbolic link and a directory', async () => {
    const target = path.join(dir, 'target.key');
    await writeFile(target, randomBytes(32), { mode: 0o600 });
    const link = path.join(dir, 'link.key');
    await symlink(target, link);
    await assert.rejects(LocalKeyManager.open(link), MasterKeyFileError);
    await assert.rejects(LocalKeyManager.open(dir), MasterKeyFileError);
  });

  it('wraps as nonce || ciphertext || tag and stops working once closed', async () => {
    const km = await LocalKeyManager.open(path.join(dir, 'format.key'));
    const wrapped = await km.wrap(randomBytes(32));
    assert.equal(wrapped.length, 12 + 32 + 16);
    await assert.rejects(km.unwrap(wrapped.subarray(0, 20), km.kekId), /rejected/);
    await km.close();
    await assert.rejects(km.wrap(randomBytes(32)), /closed/);
  });
});
