// The behaviour every KeyManager must have, run against each implementation (local file, Cloud KMS via
// the fake server), together with the envelope functions on top of it.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { KeyManager } from '../../shared/custody/key-manager.js';
import { SecretDecryptionError, UnknownKekError, WrappedDekRejectedError } from '../../shared/custody/errors.js';
import { openSecret, ownerAad, rewrapSecret, sealSecret, type SealedSecret } from '../../shared/custody/envelope.js';

export interface ContractSubject {
  km: KeyManager;
  cleanup(): Promise<void>;
}

function flipped(buf: Uint8Array, index: number): Buffer {
  const copy = Buffer.from(buf);
  copy[index] = copy[index]! ^ 0x01;
  return copy;
}

export function keyManagerContract(name: string, setup: () => Promise<ContractSubject>): void {
  describe(`KeyManager contract: ${name}`, () => {
    let subject: ContractSubject;
    let km: KeyManager;
    before(async () => {
      subject = await setup();
      km = subject.km;
    });
    after(async () => {
      await subject.cleanup();
    });

    it('has a kind and a KEK id', () => {
      assert.ok(km.kind === 'local' || km.kind === 'gcp');
      assert.ok(km.kekId.length > 0);
    });

    it('unwraps what it wrapped', async () => {
      const dek = randomBytes(32);
      const wrapped = await km.wrap(dek);
      assert.deepEqual(Buffer.from(await km.unwrap(wrapped, km.kekId)), dek);
    });

    it('wraps the same DEK differently each time and never in the clear', async () => {
      const dek = randomBytes(32);
      const a = Buffer.from(await km.wrap(dek));
      const b = Buffer.from(await km.wrap(dek));
      assert.notDeepEqual(a, b);
      assert.equal(a.includes(dek), false);
    });

    it('rejects an altered wrapped DEK at its start, middle and end', async () => {
      const wrapped = await km.wrap(randomBytes(32));
      for (const index of [0, Math.floor(wrapped.length / 2), wrapped.length - 1]) {
        await assert.rejects(km.unwrap(flipped(wrapped, index), km.kekId), WrappedDekRejectedError);
      }
    });

    it('refuses a KEK id it does not hold', async () => {
      const wrapped = await km.wrap(randomBytes(32));
      await assert.rejects(km.unwrap(wrapped, 'other:0123456789abcdef'), UnknownKekError);
    });

    describe('envelope on top', () => {
      const secret = randomBytes(32);
      const aad = ownerAad('user', 'contract-user-1');
      let sealed: SealedSecret;
      before(async () => {
        sealed = await sealSecret(km, secret, aad);
      });

      it('seals under the current KEK and opens again', async () => {
        assert.equal(sealed.kekId, km.kekId);
        assert.equal(sealed.nonce.length, 12);
        assert.equal(sealed.ciphertext.length, secret.length + 16);
        assert.deepEqual(Buffer.from(await openSecret(km, sealed, aad)), secret);
      });

      it("does not open with another owner's AAD", async () => {
        for (const other of [ownerAad('user', 'contract-user-2'), ownerAad('bunker', 'contract-user-1')]) {
          await assert.rejects(openSecret(km, sealed, other), SecretDecryptionError);
        }
      });

      it('does not open when the ciphertext, nonce or wrapped DEK is altered', async () => {
        const altered: SealedSecret[] = [
          { ...sealed, ciphertext: flipped(sealed.ciphertext, 0) },
          { ...sealed, ciphertext: flipped(sealed.ciphertext, sealed.ciphertext.length - 1) },
          { ...sealed, nonce: flipped(sealed.nonce, 5) },
          { ...sealed, wrappedDek: flipped(sealed.wrappedDek, sealed.wrappedDek.length >> 1) },
        ];
        for (const row of altered) {
          const err = await openSecret(km, row, aad).then(
            () => undefined,
            (e: unknown) => e,
          );
          assert.ok(err instanceof SecretDecryptionError, `expected SecretDecryptionError, got ${String(err)}`);
          assert.equal(err.message.includes(secret.toString('hex')), false);
        }
      });

      it('re-wraps the DEK and leaves the ciphertext alone', async () => {
        const rewrapped = await rewrapSecret(km, sealed);
        assert.equal(rewrapped.kekId, km.kekId);
        assert.deepEqual(rewrapped.ciphertext, sealed.ciphertext);
        assert.deepEqual(rewrapped.nonce, sealed.nonce);
        assert.notDeepEqual(rewrapped.wrappedDek, sealed.wrappedDek);
        assert.deepEqual(Buffer.from(await openSecret(km, rewrapped, aad)), secret);
      });
    });
  });
}
