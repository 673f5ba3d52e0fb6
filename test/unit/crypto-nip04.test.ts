import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as toolsNip04 from 'nostr-tools/nip04';
import { getSharedX, Nip04Error, nip04Decrypt, nip04Encrypt } from '../../shared/nostr/nip04.js';
import { generateSecretKey, getPublicKeyHex, InvalidKeyError } from '../../shared/nostr/keys.js';
import { bytesToHex } from '../../shared/nostr/hex.js';

test('the shared x is the same from both sides', () => {
  const a = generateSecretKey();
  const b = generateSecretKey();
  assert.equal(bytesToHex(getSharedX(a, getPublicKeyHex(b))), bytesToHex(getSharedX(b, getPublicKeyHex(a))));
});

test('interoperates with nostr-tools nip04 in both directions', () => {
  for (const plaintext of ['hello', '', 'ünïcödé ✓ 🦄', 'x'.repeat(5000)]) {
    const alice = generateSecretKey();
    const bob = generateSecretKey();
    const alicePub = getPublicKeyHex(alice);
    const bobPub = getPublicKeyHex(bob);
    const ours = nip04Encrypt(getSharedX(alice, bobPub), plaintext);
    assert.match(ours, /^[A-Za-z0-9+/=]+\?iv=[A-Za-z0-9+/=]{24}$/);
    assert.equal(toolsNip04.decrypt(bob, alicePub, ours), plaintext);
    const theirs = toolsNip04.encrypt(bob, alicePub, plaintext);
    assert.equal(nip04Decrypt(getSharedX(alice, bobPub), theirs), plaintext);
  }
});

test('malformed payloads and wrong keys give clear Nip04Errors', () => {
  const key = randomBytes(32);
  const good = nip04Encrypt(key, 'secret message');
  const [ct, iv] = good.split('?iv=') as [string, string];
  const cases: [string, RegExp][] = [
    ['no iv here', /expected <ciphertext>\?iv=<iv>/],
    [`${ct}?iv=${iv}?iv=${iv}`, /expected <ciphertext>\?iv=<iv>/],
    [`${ct}?iv=!!!!`, /invalid base64 in iv/],
    [`${ct}?iv=AAAA`, /invalid iv/],
    [`%%%%?iv=${iv}`, /invalid base64 in ciphertext/],
    [`AAAA?iv=${iv}`, /invalid ciphertext length/],
    [`?iv=${iv}`, /invalid ciphertext length/],
  ];
  for (const [payload, pattern] of cases) {
    assert.throws(
      () => nip04Decrypt(key, payload),
      (err: Error) => err instanceof Nip04Error && pattern.test(err.message),
      payload,
    );
  }
  // A wrong key almost always breaks the PKCS#7 padding; when it happens not to, the text is garbage.
  let refused = 0;
  for (let i = 0; i < 8; i++) {
    try {
      assert.notEqual(nip04Decrypt(randomBytes(32), good), 'secret message');
    } catch (err) {
      assert.ok(err instanceof Nip04Error && /decryption failed/.test(err.message));
      refused++;
    }
  }
  assert.ok(refused >= 4);
  assert.throws(() => nip04Encrypt(randomBytes(16), 'x'), /invalid shared key length/);
});

test('an invalid peer pubkey is refused before any ECDH', () => {
  const sk = generateSecretKey();
  assert.throws(() => getSharedX(sk, 'f'.repeat(64)), InvalidKeyError);
  assert.throws(() => getSharedX(sk, 'abc'), /invalid peer pubkey/);
  assert.throws(() => getSharedX(new Uint8Array(32), getPublicKeyHex(sk)), InvalidKeyError);
});
