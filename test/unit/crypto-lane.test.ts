// The crypto lane (workers/crypto/lane.ts): curve work sent to a thread as binary records, one transferred
// buffer per batch. Its answers must agree with this thread's backend, refuse what the backend refuses,
// never return a signature that failed its check, wipe secrets on both sides, and turn a dead thread into
// errors, not hung requests.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { schnorr } from '@noble/curves/secp256k1.js';
import { v2 as toolsNip44 } from 'nostr-tools/nip44';
import { verifyEvent as toolsVerifyEvent } from 'nostr-tools/pure';
import { nativeBackend, useCryptoBackend, type CryptoBackend } from '../../shared/nostr/crypto-backend.js';
import { InvalidKeyError } from '../../shared/nostr/key-error.js';
import { bytesToHex } from '../../shared/nostr/hex.js';
import { getConversationKey } from '../../shared/nostr/nip44.js';
import type { NostrEvent } from '../../shared/nostr/types.js';
import { CurveCheckError } from '../../workers/crypto/curve.js';
import { CryptoLane, LaneThreadError } from '../../workers/crypto/lane.js';
import {
  batchBytes,
  HEADER_BYTES,
  LaneOp,
  LaneStatus,
  OFF_KEY,
  OFF_KEY_LENGTH,
  OFF_MSG,
  OFF_OP,
  OFF_PUB,
  OFF_SIG,
  OFF_STATUS,
  runLaneRecords,
  setRecordCount,
} from '../../workers/crypto/lane-records.js';
import { runCryptoOps } from '../../workers/crypto/ops.js';
import { recordSecret } from '../support/logs.js';

const native = nativeBackend() as CryptoBackend;
const FAULTS = new URL('../support/lane-thread-faults.js', import.meta.url);

function newKey() {
  const sk = randomBytes(32);
  recordSecret(sk.toString('hex'));
  return { sk, keypair: native.keyMaterial(sk), pub: native.getPublicKey(sk) };
}

const lane = new CryptoLane({ threads: 1, backend: 'native', maxBatch: 64 });
after(() => lane.close());

test('500 random keys: lane signatures verify (here and with noble), verification and ECDH agree with this thread', async () => {
  const cases = Array.from({ length: 500 }, () => ({ ...newKey(), peer: newKey(), msg: randomBytes(32) }));
  // All at once: 500 records over several batches of at most 64.
  const answers = await Promise.all(
    cases.map(async (c, i) => {
      const sig = await lane.sign(c.msg, i % 2 ? c.keypair : c.sk, c.pub, true);
      const tampered = Uint8Array.from(sig);
      tampered[i % 64]! ^= 1 << (i % 8);
      return {
        sig,
        valid: await lane.verify(sig, c.msg, c.pub),
        tampered: await lane.verify(tampered, c.msg, c.pub),
        shared: await lane.ecdhX(c.keypair, c.peer.pub),
      };
    }),
  );
  for (const [i, c] of cases.entries()) {
    const a = answers[i]!;
    assert.ok(native.verify(a.sig, c.msg, c.pub), `case ${i}: the signature verifies here`);
    if (i % 25 === 0) assert.ok(schnorr.verify(a.sig, c.msg, c.pub), `case ${i}: and with noble`);
    assert.equal(a.valid, true);
    assert.equal(a.tampered, false);
    assert.deepEqual(a.shared, native.ecdhX(c.peer.keypair, c.pub), `case ${i}: both sides get the same shared x`);
  }
  await assert.rejects(lane.ecdhX(cases[0]!.keypair, new Uint8Array(32).fill(0xff)), /invalid peer pubkey/);
  assert.equal(await lane.verify(new Uint8Array(64), randomBytes(32), cases[0]!.pub), false);
});

test("a secret that is not the signer's is refused, by the lane and through the ops", async () => {
  const user = newKey();
  const other = newKey();
  for (const key of [other.keypair, other.sk])
    await assert.rejects(
      lane.sign(randomBytes(32), key, user.pub, true),
      (err: Error) => err instanceof InvalidKeyError && err.message === 'secret key does not match the signer pubkey',
    );
  const event = { kind: 1, content: 'x', tags: [], created_at: 1700000000 };
  const [wrong, right] = await runCryptoOps(
    [
      { op: 'sign_event', sk: other.keypair, pubkey: bytesToHex(user.pub), event },
      { op: 'sign_event', sk: user.keypair, pubkey: bytesToHex(user.pub), event },
    ],
    lane,
  );
  assert.deepEqual(wrong, { ok: false, error: 'secret key does not match the signer pubkey' });
  assert.ok(right?.ok && toolsVerifyEvent({ ...(right.value as NostrEvent) }));
});

test('a signature that fails its check is refused and never returned (faulty signer in the lane thread)', async () => {
  const faults = new CryptoLane({ threads: 1, backend: 'native', threadUrl: FAULTS });
  try {
    const { keypair, pub } = newKey();
    const msg = randomBytes(32);
    msg[0] = 0xfa;
    await assert.rejects(faults.sign(msg, keypair, pub, true), CurveCheckError);
    // Unchecked (a NIP-46 envelope, left to the relays) the fault goes through: the check is what stops it.
    const unchecked = await faults.sign(msg, keypair, pub, false);
    assert.equal(native.verify(unchecked, msg, pub), false);
    msg[0] = 0;
    assert.ok(native.verify(await faults.sign(msg, keypair, pub, true), msg, pub), 'a sound signature passes');
  } finally {
    await faults.close();
  }
});

/** One record of a batch, filled as the lane's client fills it. */
function oneRecordBatch(op: number, key: Uint8Array, msg: Uint8Array, pub: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(batchBytes(1));
  setRecordCount(bytes, 1);
  const r = bytes.subarray(HEADER_BYTES);
  r[OFF_OP] = op;
  r[OFF_KEY_LENGTH] = key.length;
  r.set(key, OFF_KEY);
  r.set(msg, OFF_MSG);
  r.set(pub, OFF_PUB);
  return r;
}

test('the thread side: a failed check writes no signature, and every key is wiped after use', () => {
  const { keypair, pub } = newKey();
  const msg = randomBytes(32);
  const faulty: CryptoBackend = {
    ...native,
    signWithKey: (m, k, p, a) => {
      const sig = native.signWithKey(m, k, p, a);
      sig[5]! ^= 0x10;
      return sig;
    },
  };
  useCryptoBackend('native', () => ({ backend: faulty }));
  try {
    const r = oneRecordBatch(LaneOp.SignChecked, keypair, msg, pub);
    runLaneRecords(new Uint8Array(r.buffer));
    assert.equal(r[OFF_STATUS], LaneStatus.CheckFailed);
    assert.ok(
      r.subarray(OFF_SIG, OFF_SIG + 64).every((b) => b === 0),
      'no signature bytes left in the record',
    );
    assert.ok(
      r.subarray(OFF_KEY, OFF_KEY + 96).every((b) => b === 0),
      'the keypair is wiped',
    );
  } finally {
    useCryptoBackend('auto');
  }
  const ok = oneRecordBatch(LaneOp.SignChecked, keypair, msg, pub);
  runLaneRecords(new Uint8Array(ok.buffer));
  assert.equal(ok[OFF_STATUS], LaneStatus.Ok);
  assert.ok(native.verify(ok.subarray(OFF_SIG, OFF_SIG + 64), msg, pub));
  assert.ok(
    ok.subarray(OFF_KEY, OFF_KEY + 96).every((b) => b === 0),
    'the keypair is wiped after a signature too',
  );
  const peer = newKey();
  const ecdh = oneRecordBatch(LaneOp.Ecdh, keypair, new Uint8Array(32), peer.pub);
  runLaneRecords(new Uint8Array(ecdh.buffer));
  assert.equal(ecdh[OFF_STATUS], LaneStatus.Ok);
  assert.ok(
    ecdh.subarray(OFF_KEY, OFF_KEY + 96).every((b) => b === 0),
    'and after ECDH',
  );
});

test('this side wipes each buffer before it is reused: shared x and keys do not travel again', async () => {
  // The faults thread fails every record of a batch whose buffer holds anything beyond its records.
  const faults = new CryptoLane({ threads: 1, backend: 'native', threadUrl: FAULTS });
  try {
    const user = newKey();
    const peers = [newKey(), newKey(), newKey()];
    const shared = await Promise.all(peers.map((p) => faults.ecdhX(user.keypair, p.pub)));
    for (const [i, p] of peers.entries()) assert.deepEqual(shared[i], native.ecdhX(p.keypair, user.pub));
    const msg = randomBytes(32);
    // The next batch reuses the wiped buffer of the last: one record where three shared x were.
    const sig = await faults.sign(msg, user.keypair, user.pub, true);
    assert.ok(native.verify(sig, msg, user.pub));
    for (const [i, p] of peers.entries())
      assert.deepEqual(shared[i], native.ecdhX(p.keypair, user.pub), 'the answers are copies, kept after the wipe');
  } finally {
    await faults.close();
  }
});

test('a thread that dies fails the ops it held with an error, and the next batch runs on a new thread', async () => {
  const errors: Error[] = [];
  const faults = new CryptoLane({
    threads: 1,
    backend: 'native',
    threadUrl: FAULTS,
    onThreadError: (err) => errors.push(err),
  });
  try {
    const { keypair, pub } = newKey();
    const crash = new Uint8Array(32).fill(0xee);
    const msg = randomBytes(32);
    const outcome = await Promise.allSettled([
      faults.sign(crash, keypair, pub, true),
      faults.sign(msg, keypair, pub, true),
    ]);
    for (const o of outcome) assert.ok(o.status === 'rejected' && o.reason instanceof LaneThreadError);
    assert.equal(errors.length, 1);
    assert.match(errors[0]!.message, /exited \(code 3\)/);
    const sig = await faults.sign(msg, keypair, pub, true);
    assert.ok(native.verify(sig, msg, pub), 'a new thread answers');
    // Through the ops, a lost thread is a plain error for the client.
    const [r] = await runCryptoOps(
      [{ op: 'nip04_encrypt', sk: keypair, peer: bytesToHex(crash), plaintext: 'x' }],
      faults,
    );
    assert.deepEqual(r, { ok: false, error: 'crypto operation failed' });
    assert.equal(errors.length, 2);
  } finally {
    await faults.close();
  }
});

test('nip46_respond through the lane: the user signature is checked, the answer decrypts, the conversation key comes back', async () => {
  const user = newKey();
  const bunker = newKey();
  const client = newKey();
  const userPub = bytesToHex(user.pub);
  const clientPub = bytesToHex(client.pub);
  const [r] = await runCryptoOps(
    [
      {
        op: 'nip46_respond',
        id: 'req-1',
        userOp: {
          op: 'sign_event',
          sk: user.keypair,
          pubkey: userPub,
          event: { kind: 1, content: 'via the lane', tags: [], created_at: 1700000000 },
        },
        seal: { sk: bunker.keypair, pubkey: bytesToHex(bunker.pub), peer: clientPub, scheme: 'nip44', createdAt: 1 },
      },
    ],
    lane,
  );
  assert.ok(r?.ok);
  const envelope = r.value as NostrEvent;
  assert.ok(toolsVerifyEvent({ ...envelope }), 'the envelope is signed by the bunker key');
  const convKey = toolsNip44.utils.getConversationKey(client.sk, bytesToHex(bunker.pub));
  assert.deepEqual(r.convKey, getConversationKey(bunker.sk, clientPub));
  const response = JSON.parse(toolsNip44.decrypt(envelope.content, convKey)) as { id: string; result: string };
  assert.equal(response.id, 'req-1');
  const signed = JSON.parse(response.result) as NostrEvent;
  assert.equal(signed.pubkey, userPub);
  assert.ok(toolsVerifyEvent(signed));
});

test('close answers what was sent, then refuses', async () => {
  const closing = new CryptoLane({ threads: 2, backend: 'native' });
  const { keypair, pub } = newKey();
  const msg = randomBytes(32);
  const pending = closing.sign(msg, keypair, pub, true);
  await closing.close();
  assert.ok(native.verify(await pending, msg, pub));
  await assert.rejects(closing.sign(msg, keypair, pub, true), /closed/);
});
