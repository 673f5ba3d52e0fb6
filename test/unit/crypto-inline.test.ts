// The inline runner: symmetric ops with a cached key run on the calling thread, everything with a curve
// operation (or a large text) goes to the pool, and each caller gets its results in its own order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { v2 as toolsNip44 } from 'nostr-tools/nip44';
import { InlineCheapOpsRunner, INLINE_MAX_TEXT, runsInline } from '../../workers/crypto/inline-runner.js';
import type { CryptoOp, CryptoResult, CryptoRunner } from '../../workers/crypto/types.js';
import { generateSecretKey, getPublicKeyHex } from '../../shared/nostr/keys.js';
import { getConversationKey } from '../../shared/nostr/nip44.js';
import { verifyEvent } from '../../shared/nostr/event.js';
import type { NostrEvent } from '../../shared/nostr/types.js';
import { type Curve, localCurve } from '../../workers/crypto/curve.js';

const sk = generateSecretKey();
const peer = generateSecretKey();
const peerPub = getPublicKeyHex(peer);
const convKey = getConversationKey(sk, peerPub);

class RecordingPool implements CryptoRunner {
  seen: CryptoOp[][] = [];
  closed = false;
  async run(ops: CryptoOp[]): Promise<CryptoResult[]> {
    this.seen.push(ops);
    return ops.map((o) => ({ ok: true, value: `pool ${o.op}` }));
  }
  async close() {
    this.closed = true;
  }
}

test('runsInline: only NIP-44/NIP-04 work with a conversation key at hand and a bounded text', () => {
  const text = 'x'.repeat(10);
  assert.equal(runsInline({ op: 'nip44_encrypt', sk, peer: peerPub, plaintext: text, convKey }), true);
  assert.equal(runsInline({ op: 'nip04_decrypt', sk, peer: peerPub, ciphertext: text, convKey }), true);
  assert.equal(runsInline({ op: 'nip44_encrypt', sk, peer: peerPub, plaintext: text }), false, 'no key: ECDH');
  assert.equal(
    runsInline({ op: 'nip44_decrypt', sk, peer: peerPub, ciphertext: 'x'.repeat(INLINE_MAX_TEXT + 1), convKey }),
    false,
    'large',
  );
  assert.equal(
    runsInline({ op: 'nip44_decrypt', sk, peer: peerPub, ciphertext: 42 as unknown as string, convKey }),
    false,
  );
  assert.equal(
    runsInline({
      op: 'sign_event',
      sk,
      pubkey: getPublicKeyHex(sk),
      event: { kind: 1, content: '', tags: [], created_at: 1 },
    }),
    false,
  );
  assert.equal(runsInline({ op: 'verify_event', event: {} as never }), false);
});

test("a mixed batch: cheap ops answered here, the rest by the pool, results in the caller's order", async () => {
  const pool = new RecordingPool();
  const runner = new InlineCheapOpsRunner(pool);
  const ciphertext = toolsNip44.encrypt('from peer', toolsNip44.utils.getConversationKey(peer, getPublicKeyHex(sk)));
  const ops: CryptoOp[] = [
    { op: 'sign_event', sk, pubkey: getPublicKeyHex(sk), event: { kind: 1, content: '', tags: [], created_at: 1 } },
    { op: 'nip44_decrypt', sk, peer: peerPub, ciphertext, convKey },
    { op: 'nip44_encrypt', sk, peer: peerPub, plaintext: 'needs ECDH' },
    { op: 'nip44_decrypt', sk, peer: peerPub, ciphertext: 'garbage', convKey },
  ];
  const results = await runner.run(ops);
  assert.deepEqual(pool.seen, [[ops[0], ops[2]]], 'only the curve work went to the pool');
  assert.deepEqual(results[0], { ok: true, value: 'pool sign_event' });
  assert.deepEqual(results[1], { ok: true, value: 'from peer' });
  assert.deepEqual(results[2], { ok: true, value: 'pool nip44_encrypt' });
  assert.equal(results[3]?.ok, false, 'a bad ciphertext fails alone');
});

test('all-cheap batches never reach the pool; all-pool batches go through untouched; close closes the pool', async () => {
  const pool = new RecordingPool();
  const runner = new InlineCheapOpsRunner(pool);
  const [enc] = await runner.run([{ op: 'nip44_encrypt', sk, peer: peerPub, plaintext: 'hello', convKey }]);
  assert.ok(enc?.ok);
  assert.equal(
    toolsNip44.decrypt(enc.value as string, toolsNip44.utils.getConversationKey(peer, getPublicKeyHex(sk))),
    'hello',
  );
  assert.equal(pool.seen.length, 0);
  const verify: CryptoOp[] = [{ op: 'verify_event', event: {} as never }];
  await runner.run(verify);
  assert.equal(pool.seen[0], verify, 'the same array, no copy');
  await runner.close();
  assert.ok(pool.closed);
});

test('with a curve, small ops run here with their curve work on it, signed and verified; large texts go to the pool', async () => {
  const pool = new RecordingPool();
  const calls: string[] = [];
  const curve: Curve = {
    sign: (...args) => (calls.push('sign'), localCurve.sign(...args)),
    verify: (...args) => (calls.push('verify'), localCurve.verify(...args)),
    ecdhX: (...args) => (calls.push('ecdh'), localCurve.ecdhX(...args)),
  };
  const runner = new InlineCheapOpsRunner(pool, { curve });
  const sign = (content: string): CryptoOp => ({
    op: 'sign_event',
    sk,
    pubkey: getPublicKeyHex(sk),
    event: { kind: 1, content, tags: [], created_at: 1 },
  });
  const [signed, wrongKey, sealed] = await runner.run([
    sign('inline'),
    {
      op: 'sign_event',
      sk: peer,
      pubkey: getPublicKeyHex(sk),
      event: { kind: 1, content: '', tags: [], created_at: 1 },
    },
    { op: 'nip44_encrypt', sk, peer: peerPub, plaintext: 'needs ECDH' },
  ]);
  assert.equal(pool.seen.length, 0, 'nothing posted to the pool');
  assert.deepEqual(calls, ['sign', 'sign', 'ecdh']);
  assert.ok(signed?.ok);
  assert.ok(verifyEvent(signed.value as NostrEvent), 'a valid signature by the user key');
  assert.equal(wrongKey?.ok, false, "another key's secret is refused, not signed");
  assert.ok(sealed?.ok && sealed.convKey, 'the conversation key it computed comes back for the cache');

  const [big, small] = await runner.run([sign('x'.repeat(INLINE_MAX_TEXT + 1)), sign('small')]);
  assert.equal(pool.seen.length, 1, 'a large text goes to the pool');
  assert.deepEqual(pool.seen[0]?.length, 1);
  assert.deepEqual(big, { ok: true, value: 'pool sign_event' });
  assert.ok(small?.ok && verifyEvent(small.value as NostrEvent));
});
