import { test } from 'node:test';
import assert from 'node:assert/strict';
import { v2 as toolsNip44 } from 'nostr-tools/nip44';
import * as toolsNip04 from 'nostr-tools/nip04';
import { verifyEvent as toolsVerifyEvent } from 'nostr-tools/pure';
import { runCryptoOps } from '../../workers/crypto/ops.js';
import { cryptoBackend, useCryptoBackend, type CryptoBackend } from '../../shared/nostr/crypto-backend.js';
import type { CryptoOp, CryptoResult, KeyOp } from '../../workers/crypto/types.js';
import type { NostrEvent } from '../../shared/nostr/types.js';
import { generateSecretKey, getPublicKeyHex } from '../../shared/nostr/keys.js';
import { bytesToHex } from '../../shared/nostr/hex.js';
import { getConversationKey } from '../../shared/nostr/nip44.js';
import { getSharedX } from '../../shared/nostr/nip04.js';

const user = generateSecretKey();
const userPub = getPublicKeyHex(user);
const peer = generateSecretKey();
const peerPub = getPublicKeyHex(peer);
const EVENT = { kind: 1, content: 'signed in a batch', tags: [['t', 'keyfarm']], created_at: 1700000000 };

function okValue(result: CryptoResult | undefined): { value: NostrEvent | string; convKey?: Uint8Array } {
  assert.ok(result?.ok, `expected success, got ${JSON.stringify(result)}`);
  return result as { ok: true; value: NostrEvent | string; convKey?: Uint8Array };
}

function errorOf(result: CryptoResult | undefined): string {
  assert.ok(result && !result.ok, `expected failure, got ${JSON.stringify(result)}`);
  return (result as { ok: false; error: string }).error;
}

test('a mixed batch: every op gets its own result and a failing op does not fail the others', async () => {
  const toPeer44 = toolsNip44.encrypt('from peer (44)', toolsNip44.utils.getConversationKey(peer, userPub));
  const toPeer04 = toolsNip04.encrypt(peer, userPub, 'from peer (04)');
  const ops: CryptoOp[] = [
    { op: 'sign_event', sk: user, pubkey: userPub, event: EVENT },
    { op: 'nip44_decrypt', sk: user, peer: peerPub, ciphertext: 'not a payload' },
    { op: 'nip44_encrypt', sk: user, peer: peerPub, plaintext: 'to peer (44)' },
    { op: 'nip44_decrypt', sk: user, peer: peerPub, ciphertext: toPeer44 },
    { op: 'nip04_encrypt', sk: user, peer: peerPub, plaintext: 'to peer (04)' },
    { op: 'nip04_decrypt', sk: user, peer: peerPub, ciphertext: toPeer04 },
    { op: 'nip44_encrypt', sk: user, peer: 'f'.repeat(64), plaintext: 'x' },
  ];
  const results = await runCryptoOps(ops);
  assert.equal(results.length, ops.length);

  const signed = okValue(results[0]).value as NostrEvent;
  assert.equal(signed.pubkey, userPub);
  assert.deepEqual(
    { kind: signed.kind, content: signed.content, tags: signed.tags, created_at: signed.created_at },
    EVENT,
  );
  assert.ok(toolsVerifyEvent({ ...signed }));

  assert.match(errorOf(results[1]), /invalid payload length|invalid base64/);

  const enc44 = okValue(results[2]);
  assert.equal(
    toolsNip44.decrypt(enc44.value as string, toolsNip44.utils.getConversationKey(peer, userPub)),
    'to peer (44)',
  );
  assert.equal(
    bytesToHex(enc44.convKey as Uint8Array),
    bytesToHex(getConversationKey(user, peerPub)),
    'computed key is returned for the cache',
  );

  assert.equal(okValue(results[3]).value, 'from peer (44)');

  const enc04 = okValue(results[4]);
  assert.equal(toolsNip04.decrypt(peer, userPub, enc04.value as string), 'to peer (04)');
  assert.equal(bytesToHex(enc04.convKey as Uint8Array), bytesToHex(getSharedX(user, peerPub)));

  assert.equal(okValue(results[5]).value, 'from peer (04)');
  assert.equal(errorOf(results[6]), 'invalid peer pubkey');
});

test('a cached conversation key is used as given and not returned again', async () => {
  const convKey = getConversationKey(user, peerPub);
  const sharedX = getSharedX(user, peerPub);
  const [enc44, enc04] = await runCryptoOps([
    { op: 'nip44_encrypt', sk: user, peer: peerPub, plaintext: 'cached', convKey },
    { op: 'nip04_encrypt', sk: user, peer: peerPub, plaintext: 'cached', convKey: sharedX },
  ]);
  assert.equal(okValue(enc44).convKey, undefined);
  assert.equal(okValue(enc04).convKey, undefined);
  assert.equal(toolsNip44.decrypt(okValue(enc44).value as string, convKey), 'cached');
  // A wrong cached key is the caller's bug, but the MAC still refuses to decrypt with it.
  const payload = okValue(enc44).value as string;
  const [bad] = await runCryptoOps([
    { op: 'nip44_decrypt', sk: user, peer: peerPub, ciphertext: payload, convKey: sharedX },
  ]);
  assert.equal(errorOf(bad), 'invalid MAC');
});

test("sign_event refuses a pubkey that is not the key's, an invalid event, and unknown ops, without leaking keys", async () => {
  const skHex = bytesToHex(user);
  const results = await runCryptoOps([
    { op: 'sign_event', sk: user, pubkey: peerPub, event: EVENT },
    { op: 'sign_event', sk: user, pubkey: 'nope', event: EVENT },
    { op: 'sign_event', sk: user, pubkey: userPub, event: { ...EVENT, kind: -1 } },
    { op: 'sign_event', sk: new Uint8Array(32), pubkey: userPub, event: EVENT },
    { op: 'nip44_encrypt', sk: user, peer: peerPub, plaintext: '' },
    { op: 'nip44_decrypt', sk: user, peer: peerPub, ciphertext: 42 as unknown as string },
    { op: 'nip44_encrypt', sk: user, peer: peerPub, plaintext: 'x', convKey: new Uint8Array(5) },
    { op: 'rotate_keys', sk: user } as unknown as CryptoOp,
  ]);
  assert.equal(errorOf(results[0]), 'secret key does not match the signer pubkey');
  assert.equal(errorOf(results[1]), 'invalid signer pubkey');
  assert.match(errorOf(results[2]), /^event\.kind/);
  assert.match(errorOf(results[3]), /out of range|crypto operation failed/);
  assert.match(errorOf(results[4]), /invalid plaintext length/);
  assert.equal(errorOf(results[5]), 'ciphertext must be a string');
  assert.equal(errorOf(results[6]), 'invalid cached conversation key');
  assert.equal(errorOf(results[7]), 'unknown crypto op');
  for (const result of results) assert.ok(!JSON.stringify(result).includes(skHex));
});

test('an empty batch gives an empty result', async () => {
  assert.deepEqual(await runCryptoOps([]), []);
});

test('nip46_respond: runs the user op, encrypts the answer to the client and signs it with the bunker key', async () => {
  const bunker = generateSecretKey();
  const bunkerPub = getPublicKeyHex(bunker);
  const seal = (scheme: 'nip44' | 'nip04', convKey?: Uint8Array) => ({
    sk: bunker,
    pubkey: bunkerPub,
    peer: peerPub,
    scheme,
    createdAt: 1700000001,
    ...(convKey ? { convKey } : {}),
  });
  const [signed, refused, failedOp, nip04, cached] = await runCryptoOps([
    {
      op: 'nip46_respond',
      id: 'r1',
      userOp: { op: 'sign_event', sk: user, pubkey: userPub, event: EVENT },
      seal: seal('nip44'),
    },
    { op: 'nip46_respond', id: 'r2', answer: { result: '', error: 'Operation denied by policy' }, seal: seal('nip44') },
    {
      op: 'nip46_respond',
      id: 'r3',
      userOp: { op: 'nip44_decrypt', sk: user, peer: peerPub, ciphertext: 'not a payload' },
      seal: seal('nip44'),
    },
    { op: 'nip46_respond', id: 'r4', answer: { result: 'pong' }, seal: seal('nip04') },
    {
      op: 'nip46_respond',
      id: 'r5',
      answer: { result: 'ack' },
      seal: seal('nip44', getConversationKey(bunker, peerPub)),
    },
  ]);
  const clientConv = toolsNip44.utils.getConversationKey(peer, bunkerPub);
  const open = (r: CryptoResult | undefined, scheme: 'nip44' | 'nip04' = 'nip44') => {
    const event = okValue(r).value as NostrEvent;
    assert.ok(toolsVerifyEvent(event as never), 'the response event verifies with nostr-tools');
    assert.equal(event.kind, 24133);
    assert.equal(event.pubkey, bunkerPub);
    assert.deepEqual(event.tags, [['p', peerPub]]);
    const text =
      scheme === 'nip44'
        ? toolsNip44.decrypt(event.content, clientConv)
        : toolsNip04.decrypt(peer, bunkerPub, event.content);
    return JSON.parse(text as string) as { id: string; result: string; error?: string };
  };

  const r1 = open(signed);
  assert.equal(r1.id, 'r1');
  const inner = JSON.parse(r1.result) as NostrEvent;
  assert.ok(toolsVerifyEvent(inner as never));
  assert.equal(inner.pubkey, userPub);
  assert.equal(inner.content, EVENT.content);
  assert.equal(
    ((signed as { inner?: CryptoResult }).inner as { value: NostrEvent }).value.id,
    inner.id,
    'the user op result comes back as inner',
  );
  assert.ok(okValue(signed).convKey, 'a conversation key it had to derive is returned for the cache');

  assert.deepEqual(open(refused), { id: 'r2', result: '', error: 'Operation denied by policy' });
  const r3 = open(failedOp);
  assert.equal(r3.result, '');
  assert.match(r3.error!, /invalid|payload|ciphertext/i);
  assert.equal((failedOp as { inner?: CryptoResult }).inner?.ok, false);
  assert.deepEqual(open(nip04, 'nip04'), { id: 'r4', result: 'pong' });
  assert.deepEqual(open(cached), { id: 'r5', result: 'ack' });
  assert.equal(okValue(cached).convKey, undefined, 'a cached conversation key is not returned again');

  const bad = await runCryptoOps([
    { op: 'nip46_respond', id: 'r6', answer: { result: 'x' }, seal: { ...seal('nip44'), peer: 'zz' } },
  ]);
  assert.equal(errorOf(bad[0]), 'invalid peer pubkey');
});

test('verify_event: ok for a genuine event, an error for a changed signature, id or content', async () => {
  const [signed] = await runCryptoOps([{ op: 'sign_event', sk: user, pubkey: userPub, event: EVENT }]);
  const event = okValue(signed).value as NostrEvent;
  const flip = (hex: string) => (hex[0] === '0' ? '1' : '0') + hex.slice(1);
  const results = await runCryptoOps([
    { op: 'verify_event', event },
    { op: 'verify_event', event: { ...event, sig: flip(event.sig) } },
    { op: 'verify_event', event: { ...event, id: flip(event.id) } },
    { op: 'verify_event', event: { ...event, content: `${event.content}!` } },
    { op: 'verify_event', event: { ...event, pubkey: peerPub } },
  ]);
  assert.equal(okValue(results[0]).value, event.id);
  for (const r of results.slice(1)) assert.equal(errorOf(r), 'invalid id or signature');
});

test('a nip46_respond whose user op is not a key op is refused', async () => {
  const [r] = await runCryptoOps([
    {
      op: 'nip46_respond',
      id: 'x',
      userOp: { op: 'verify_event', event: {} } as unknown as KeyOp,
      seal: { sk: user, pubkey: userPub, peer: peerPub, scheme: 'nip44', createdAt: 1 },
    },
  ]);
  assert.equal(errorOf(r), 'unknown crypto op');
});

for (const name of ['native', 'wasm'] as const)
  test(`${name}: every signature returned to an app is verified before it leaves; a NIP-46 envelope is left to the relays`, async () => {
    useCryptoBackend(name);
    const backend = cryptoBackend() as { verify: CryptoBackend['verify'] };
    const realVerify = backend.verify;
    let checks = 0;
    let fail = false;
    backend.verify = (sig, msg, pub) => {
      checks++;
      return !fail && realVerify(sig, msg, pub);
    };
    const signOp = (content: string): KeyOp => ({
      op: 'sign_event',
      sk: user,
      pubkey: userPub,
      event: { ...EVENT, content },
    });
    const seal = { sk: peer, pubkey: peerPub, peer: userPub, scheme: 'nip44' as const, createdAt: 1700000000 };
    try {
      const results = await runCryptoOps([
        signOp('a'),
        signOp('b'),
        { op: 'nip46_respond', id: 'r1', userOp: signOp('c'), seal },
        { op: 'nip46_respond', id: 'r2', answer: { result: 'pong' }, seal },
      ]);
      assert.equal(checks, 3, 'the three app signatures, not the two envelopes');
      for (const r of results) assert.ok(toolsVerifyEvent(okValue(r).value as NostrEvent));
      fail = true;
      const [direct, wrapped] = await runCryptoOps([
        signOp('d'),
        { op: 'nip46_respond', id: 'r3', userOp: signOp('e'), seal },
      ]);
      assert.equal(errorOf(direct), 'signature check failed');
      const inner = (wrapped as { inner?: CryptoResult }).inner;
      assert.equal(errorOf(inner), 'signature check failed', 'the app gets an error, not an unchecked signature');
    } finally {
      backend.verify = realVerify;
      useCryptoBackend('auto');
    }
  });
