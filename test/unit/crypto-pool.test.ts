import { test } from 'node:test';
import assert from 'node:assert/strict';
import { verifyEvent as toolsVerifyEvent } from 'nostr-tools/pure';
import { CryptoPool } from '../../workers/crypto/pool.js';
import type { CryptoOp } from '../../workers/crypto/types.js';
import type { NostrEvent } from '../../shared/nostr/types.js';
import { generateSecretKey, getPublicKeyHex } from '../../shared/nostr/keys.js';
import { nip44Decrypt } from '../../shared/nostr/nip44.js';
import { bytesToHex } from '../../shared/nostr/hex.js';

test('CryptoPool with 2 threads: batches round-trip, stats count them, close() stops the threads', async () => {
  const pool = new CryptoPool({ threads: 2 });
  try {
    const sk = generateSecretKey();
    const pubkey = getPublicKeyHex(sk);
    const peerPub = getPublicKeyHex(generateSecretKey());
    const skHexBefore = bytesToHex(sk);
    const batch = (n: number): CryptoOp[] => [
      { op: 'sign_event', sk, pubkey, event: { kind: 1, content: `batch ${n}`, tags: [], created_at: 1700000000 + n } },
      { op: 'nip44_encrypt', sk, peer: peerPub, plaintext: `secret ${n}` },
      { op: 'nip04_decrypt', sk, peer: peerPub, ciphertext: 'garbage' },
    ];
    const all = await Promise.all([1, 2, 3, 4].map((n) => pool.run(batch(n))));
    assert.equal(bytesToHex(sk), skHexBefore, "the caller's key is not wiped by the worker");
    for (const [i, results] of all.entries()) {
      assert.equal(results.length, 3);
      const [signed, encrypted, failed] = results;
      assert.ok(signed?.ok && toolsVerifyEvent({ ...(signed.value as NostrEvent) }));
      assert.equal((signed.value as NostrEvent).content, `batch ${i + 1}`);
      assert.ok(encrypted?.ok && encrypted.convKey instanceof Uint8Array && encrypted.convKey.length === 32);
      assert.equal(nip44Decrypt(encrypted.value as string, encrypted.convKey), `secret ${i + 1}`);
      assert.ok(failed && !failed.ok);
    }
    assert.deepEqual(await pool.run([]), []);
    const stats = pool.stats();
    assert.equal(stats.threads, 2);
    assert.equal(stats.completed, 4);
    assert.equal(stats.queueSize, 0);
  } finally {
    await pool.close();
  }
  await assert.rejects(pool.run([]), /closed/);
  await pool.close();
});

test('CryptoPool rejects a thread count that is not a positive integer', () => {
  assert.throws(() => new CryptoPool({ threads: 0 }), RangeError);
  assert.throws(() => new CryptoPool({ threads: 1.5 }), RangeError);
});
