import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { KeyManagerUnavailableError, type KeyManager } from '../../shared/custody/key-manager.js';
import { LocalKeyManager } from '../../shared/custody/local-key-manager.js';
import {
  SecretDecryptionError,
  openSecret,
  ownerAad,
  rewrapSecret,
  sealSecret,
} from '../../shared/custody/envelope.js';

/** Passes calls through to `inner` and keeps what sealSecret handed to wrap(), to look at afterwards. */
function recording(inner: KeyManager) {
  const passed: Uint8Array[] = [];
  const copies: Buffer[] = [];
  const km: KeyManager = {
    kind: inner.kind,
    kekId: inner.kekId,
    wrap: async (dek) => {
      passed.push(dek);
      copies.push(Buffer.from(dek));
      return inner.wrap(dek);
    },
    unwrap: (wrapped, kekId) => inner.unwrap(wrapped, kekId),
    close: () => inner.close(),
  };
  return { km, passed, copies };
}

describe('envelope', () => {
  let dir: string;
  let local: LocalKeyManager;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'kf-custody-envelope-'));
    local = await LocalKeyManager.open(path.join(dir, 'a.key'));
  });
  after(async () => {
    await local.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('builds versioned owner AADs', () => {
    assert.equal(ownerAad('user', '42'), 'keyfarm:v1:user:42');
    assert.equal(ownerAad('bunker', 'ab12'), 'keyfarm:v1:bunker:ab12');
    assert.throws(() => ownerAad('user', ''), /^Error: ownerAad: ownerId is empty$/);
  });

  it('uses a fresh DEK, nonce and ciphertext for every seal, and zeroes the DEK afterwards', async () => {
    const { km, passed, copies } = recording(local);
    const secret = randomBytes(32);
    const aad = ownerAad('user', '7');
    const a = await sealSecret(km, secret, aad);
    const b = await sealSecret(km, secret, aad);
    assert.equal(copies.length, 2);
    assert.equal(copies[0]!.length, 32);
    assert.notDeepEqual(copies[0], copies[1]);
    assert.notDeepEqual(a.nonce, b.nonce);
    assert.notDeepEqual(a.ciphertext, b.ciphertext);
    assert.notDeepEqual(a.wrappedDek, b.wrappedDek);
    for (const dek of passed)
      assert.ok(
        dek.every((byte) => byte === 0),
        'DEK buffer was not zeroed',
      );
    assert.deepEqual(Buffer.from(await openSecret(km, a, aad)), secret);
    assert.deepEqual(Buffer.from(await openSecret(km, b, aad)), secret);
  });

  it('binds the row to its owner: a row copied onto another user does not open', async () => {
    const secret = randomBytes(32);
    const sealed = await sealSecret(local, secret, ownerAad('user', 'alice'));
    await assert.rejects(openSecret(local, sealed, ownerAad('user', 'mallory')), SecretDecryptionError);
    await assert.rejects(openSecret(local, sealed, ownerAad('bunker', 'alice')), (err: Error) => {
      assert.ok(err instanceof SecretDecryptionError);
      assert.equal(err.reason, 'decrypt');
      assert.equal(err.message.includes(secret.toString('hex')), false);
      return true;
    });
  });

  it('reports a truncated ciphertext or short nonce as a decryption error', async () => {
    const aad = ownerAad('user', 'x');
    const sealed = await sealSecret(local, randomBytes(32), aad);
    const asDecrypt = (err: Error) => err instanceof SecretDecryptionError && err.reason === 'decrypt';
    await assert.rejects(
      openSecret(local, { ...sealed, ciphertext: sealed.ciphertext.subarray(0, 10) }, aad),
      asDecrypt,
    );
    await assert.rejects(
      openSecret(local, { ...sealed, ciphertext: sealed.ciphertext.subarray(0, 15) }, aad),
      asDecrypt,
    );
    await assert.rejects(openSecret(local, { ...sealed, nonce: sealed.nonce.subarray(0, 8) }, aad), asDecrypt);
    // An empty nonce, which the cipher itself refuses with an error of its own.
    await assert.rejects(openSecret(local, { ...sealed, nonce: sealed.nonce.subarray(0, 0) }, aad), asDecrypt);
  });

  it('opens a sealed empty secret (a ciphertext that is the tag alone)', async () => {
    const aad = ownerAad('user', 'x');
    const sealed = await sealSecret(local, new Uint8Array(0), aad);
    assert.equal(sealed.ciphertext.length, 16);
    assert.equal((await openSecret(local, sealed, aad)).length, 0);
  });

  it('keeps the cause of a failed authentication and of a failed unwrap', async () => {
    const sealed = await sealSecret(local, randomBytes(32), ownerAad('user', 'a'));
    await assert.rejects(openSecret(local, sealed, ownerAad('user', 'b')), (err: Error) => err.cause instanceof Error);
    await assert.rejects(
      openSecret(local, { ...sealed, kekId: 'local:ffffffffffffffff' }, ownerAad('user', 'a')),
      (err: Error) => err.cause instanceof Error,
    );
  });

  it('zeroes the unwrapped DEK after opening and after re-wrapping', async () => {
    const unwrapped: Uint8Array[] = [];
    const km: KeyManager = {
      kind: local.kind,
      kekId: local.kekId,
      wrap: (dek) => local.wrap(dek),
      unwrap: async (wrapped, kekId) => {
        const dek = await local.unwrap(wrapped, kekId);
        unwrapped.push(dek);
        return dek;
      },
      close: async () => {},
    };
    const aad = ownerAad('user', 'z');
    const sealed = await sealSecret(local, randomBytes(32), aad);
    await openSecret(km, sealed, aad);
    await assert.rejects(openSecret(km, sealed, ownerAad('user', 'other')), SecretDecryptionError);
    await rewrapSecret(km, sealed);
    assert.equal(unwrapped.length, 3);
    for (const dek of unwrapped)
      assert.ok(dek.length === 32 && dek.every((b) => b === 0), 'the DEK was left in memory');
  });

  it('refuses, and zeroes, an unwrapped DEK of the wrong length', async () => {
    const aad = ownerAad('user', 'w');
    const sealed = await sealSecret(local, randomBytes(32), aad);
    for (const length of [16, 31, 33]) {
      const handed = new Uint8Array(length).fill(0xaa);
      const km: KeyManager = {
        kind: local.kind,
        kekId: local.kekId,
        wrap: (d) => local.wrap(d),
        unwrap: async () => handed,
        close: async () => {},
      };
      await assert.rejects(
        openSecret(km, sealed, aad),
        (err: Error) => err instanceof SecretDecryptionError && err.reason === 'unwrap',
        `a ${length}-byte DEK`,
      );
      assert.ok(
        handed.every((b) => b === 0),
        `the ${length}-byte DEK was not zeroed`,
      );
    }
  });

  it('reports a row under an unknown KEK as an unwrap failure', async () => {
    const aad = ownerAad('user', 'x');
    const sealed = await sealSecret(local, randomBytes(32), aad);
    await assert.rejects(openSecret(local, { ...sealed, kekId: 'local:ffffffffffffffff' }, aad), (err: Error) => {
      assert.ok(err instanceof SecretDecryptionError);
      assert.equal(err.reason, 'unwrap');
      return true;
    });
  });

  it('lets a KeyManager outage through as KeyManagerUnavailableError (the caller answers 503)', async () => {
    const aad = ownerAad('user', 'x');
    const sealed = await sealSecret(local, randomBytes(32), aad);
    const down: KeyManager = {
      kind: 'gcp',
      kekId: local.kekId,
      wrap: async () => {
        throw new KeyManagerUnavailableError('down');
      },
      unwrap: async () => {
        throw new KeyManagerUnavailableError('down');
      },
      close: async () => {},
    };
    await assert.rejects(openSecret(down, sealed, aad), KeyManagerUnavailableError);
    await assert.rejects(sealSecret(down, randomBytes(32), aad), KeyManagerUnavailableError);
  });

  it('re-wraps a row from an old KEK to the current one without touching the ciphertext', async () => {
    const next = await LocalKeyManager.open(path.join(dir, 'b.key'));
    // During a rotation the KeyManager unwraps under the old KEK and wraps under the new one.
    const rotating: KeyManager = {
      kind: 'local',
      kekId: next.kekId,
      wrap: (dek) => next.wrap(dek),
      unwrap: (wrapped, kekId) => (kekId === local.kekId ? local.unwrap(wrapped, kekId) : next.unwrap(wrapped, kekId)),
      close: () => next.close(),
    };
    const secret = randomBytes(32);
    const aad = ownerAad('bunker', 'b1');
    const old = await sealSecret(local, secret, aad);
    const moved = await rewrapSecret(rotating, old);
    assert.equal(old.kekId, local.kekId);
    assert.equal(moved.kekId, next.kekId);
    assert.deepEqual(moved.ciphertext, old.ciphertext);
    assert.deepEqual(moved.nonce, old.nonce);
    assert.deepEqual(Buffer.from(await openSecret(next, moved, aad)), secret);
    await assert.rejects(openSecret(local, moved, aad), SecretDecryptionError);
    await next.close();
  });
});
