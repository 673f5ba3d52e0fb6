// The two crypto backends (native libsecp256k1 and its WASM build) held to the same vectors and to each
// other and to @noble/curves on 100,000 random cases, edge scalars included. Both must be available
// here: the test machine has libsecp256k1-1 (scripts/ensure-deps.sh installs it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { schnorr, secp256k1 } from '@noble/curves/secp256k1.js';
import {
  cryptoBackend,
  nativeBackend,
  resolveCryptoBackend,
  useCryptoBackend,
  wasmBackend,
  type CryptoBackend,
} from '../../shared/nostr/crypto-backend.js';
import { InvalidKeyError } from '../../shared/nostr/key-error.js';
import { KEYPAIR_BYTES } from '../../shared/nostr/secp256k1-native.js';
import { bytesToHex, hexToBytes } from '../../shared/nostr/hex.js';
import { getConversationKey } from '../../shared/nostr/nip44.js';
import { finalizeEvent, verifyEvent } from '../../shared/nostr/event.js';
import { runCryptoOps } from '../../workers/crypto/ops.js';
import type { DifferentialJob, DifferentialKind, DifferentialResult } from '../support/crypto-differential.js';
import { bip340Vectors, nip44Vectors } from './crypto-vectors/load.js';

const native = nativeBackend();
const backends = (): CryptoBackend[] => [native!, wasmBackend()];

test('the native backend loads here (libsecp256k1-1 and koffi are installed)', async () => {
  assert.ok(native, 'native backend unavailable');
  assert.equal(native.name, 'native');
  assert.equal(resolveCryptoBackend('native').backend, native);
  assert.equal(resolveCryptoBackend('wasm').backend.name, 'wasm');
  assert.equal(resolveCryptoBackend('auto').backend, native);
});

test('koffi passes a buffer to a const pointer parameter by reference: no copy of a secret is left in its memory', async () => {
  const koffi = (await import('koffi')).default;
  const memset = koffi.load('libc.so.6').func('void *memset(const uint8_t *s, int c, size_t n)');
  const buffer = new Uint8Array(96).fill(1);
  memset(buffer, 7, 96);
  assert.ok(
    buffer.every((b) => b === 7),
    'koffi copied the buffer',
  );
});

const N = BigInt('0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141');
const scalar = (x: bigint) => hexToBytes(x.toString(16).padStart(64, '0'));
const EDGE_SCALARS = [1n, 2n, N - 1n, N - 2n].map(scalar);
const rows = bip340Vectors();
const { valid, invalid } = nip44Vectors().v2;

for (const name of ['native', 'wasm'] as const) {
  const backend = () => (name === 'native' ? native! : wasmBackend());

  test(`${name}: BIP-340 vectors sign exactly, from key material and from the bare secret`, async () => {
    const signing = rows.filter((row) => row.secretKey !== '');
    assert.equal(signing.length, 4);
    for (const row of signing) {
      const sk = hexToBytes(row.secretKey);
      const pub = hexToBytes(row.publicKey.toLowerCase());
      const material = backend().keyMaterial(sk);
      assert.equal(material.length, name === 'native' ? KEYPAIR_BYTES : 32);
      assert.equal(bytesToHex(backend().getPublicKey(material)), row.publicKey.toLowerCase());
      for (const key of [material, sk]) {
        const sig = backend().signWithKey(hexToBytes(row.message), key, pub, hexToBytes(row.auxRand));
        assert.equal(bytesToHex(sig), row.signature.toLowerCase(), `row ${row.index}`);
      }
    }
  });

  test(`${name}: BIP-340 vectors verify as expected, failures included`, async () => {
    assert.equal(rows.length, 15);
    for (const row of rows) {
      assert.equal(
        backend().verify(hexToBytes(row.signature), hexToBytes(row.message), hexToBytes(row.publicKey)),
        row.valid,
        `row ${row.index} ${row.comment}`,
      );
    }
  });

  test(`${name}: NIP-44 conversation-key vectors, valid and invalid`, async () => {
    useCryptoBackend(name);
    try {
      assert.equal(cryptoBackend().name, name);
      assert.equal(valid.get_conversation_key.length, 35);
      for (const v of valid.get_conversation_key) {
        const sk = hexToBytes(v.sec1);
        assert.equal(bytesToHex(getConversationKey(sk, v.pub2)), v.conversation_key, v.pub2);
        assert.equal(
          bytesToHex(getConversationKey(backend().keyMaterial(sk), v.pub2)),
          v.conversation_key,
          'from key material',
        );
      }
      for (const v of valid.encrypt_decrypt) {
        const sec2 = hexToBytes(v.sec2);
        assert.equal(
          bytesToHex(getConversationKey(hexToBytes(v.sec1), bytesToHex(backend().getPublicKey(sec2)))),
          v.conversation_key,
        );
      }
      assert.equal(invalid.get_conversation_key.length, 8);
      for (const v of invalid.get_conversation_key) {
        assert.throws(() => getConversationKey(hexToBytes(v.sec1), v.pub2), InvalidKeyError, v.note);
      }
    } finally {
      useCryptoBackend('auto');
    }
  });

  test(`${name}: a signature by a secret that is not the signer's is refused, directly and through the ops`, async () => {
    const sk = randomBytes(32);
    const other = randomBytes(32);
    const pub = backend().getPublicKey(sk);
    const msg = randomBytes(32);
    for (const key of [backend().keyMaterial(other), other]) {
      assert.throws(
        () => backend().signWithKey(msg, key, pub),
        (err: Error) => err instanceof InvalidKeyError && /does not match/.test(err.message),
      );
    }
    useCryptoBackend(name);
    try {
      const event = { kind: 1, content: 'x', tags: [], created_at: 1700000000 };
      const [wrong, right] = await runCryptoOps([
        { op: 'sign_event', sk: backend().keyMaterial(other), pubkey: bytesToHex(pub), event },
        { op: 'sign_event', sk: backend().keyMaterial(sk), pubkey: bytesToHex(pub), event },
      ]);
      assert.deepEqual(wrong, { ok: false, error: 'secret key does not match the signer pubkey' });
      assert.ok(right?.ok && verifyEvent(right.value as never));
      assert.ok(verifyEvent(finalizeEvent(event, sk)));
    } finally {
      useCryptoBackend('auto');
    }
  });

  test(`${name}: refuses bad secrets and wiped key material without crashing`, async () => {
    const msg = randomBytes(32);
    const pub = backend().getPublicKey(EDGE_SCALARS[0]!);
    for (const bad of [new Uint8Array(32), scalar(N), new Uint8Array(31).fill(1)]) {
      assert.throws(() => backend().keyMaterial(bad));
      assert.throws(() => backend().signWithKey(msg, bad, pub));
      assert.throws(() => backend().ecdhX(bad, pub), InvalidKeyError);
    }
    if (name === 'native') {
      // A keypair zeroed by a cache eviction: libsecp256k1's illegal-argument path, which aborts by default.
      assert.throws(() => backend().signWithKey(msg, new Uint8Array(KEYPAIR_BYTES), pub), /invalid key material/);
      assert.throws(() => backend().ecdhX(new Uint8Array(KEYPAIR_BYTES), pub), /invalid key material/);
    } else {
      assert.throws(() => backend().signWithKey(msg, new Uint8Array(KEYPAIR_BYTES), pub), /native backend/);
    }
  });
}

test('native: a verification answers for the key it is given, whatever keys were parsed before it', async () => {
  const msg = randomBytes(32);
  const [a, b] = [randomBytes(32), randomBytes(32)].map((sk) => native!.keyMaterial(sk));
  const [pubA, pubB] = [a!, b!].map((k) => native!.getPublicKey(k));
  const sigA = native!.signWithKey(msg, a!, pubA!);
  const notOnCurve = hexToBytes('eefdea4cdb677750a420fee807eacf21eb9898ae79b9768766e4faa04a2d4a34'); // BIP-340 vector 5
  for (let round = 0; round < 2; round++) {
    assert.equal(native!.verify(sigA, msg, pubA!), true, `round ${round}: the signer's key`);
    assert.equal(native!.verify(sigA, msg, pubB!), false, `round ${round}: another key`);
    assert.equal(native!.verify(sigA, msg, notOnCurve), false, `round ${round}: no curve point`);
    // Past the parsed-key cache's size: it starts over, and answers stay right.
    for (let i = 0; i < 5000; i++) assert.equal(native!.verify(sigA, msg, randomBytes(32)), false);
  }
  const copyOfA = new Uint8Array(33).subarray(1);
  copyOfA.set(pubA!);
  assert.equal(native!.verify(sigA, msg, copyOfA), true, 'the same key at another offset');
  assert.equal(native!.verify(randomBytes(64), msg, pubA!), false, 'a random signature');
});

test('edge scalars 1, 2, n-1, n-2: public keys, signatures and ECDH agree across native, WASM and noble', async () => {
  const msg = hexToBytes('243f6a8885a308d313198a2e03707344a4093822299f31d0082efa98ec4e6c89');
  const aux = new Uint8Array(32).fill(0x5a);
  for (const sk of EDGE_SCALARS) {
    const pubs = backends().map((b) => bytesToHex(b.getPublicKey(sk)));
    pubs.push(bytesToHex(schnorr.getPublicKey(sk)));
    assert.equal(new Set(pubs).size, 1, `public key of ${bytesToHex(sk)}`);
    const pub = hexToBytes(pubs[0]!);
    const sigs = backends().map((b) => bytesToHex(b.signWithKey(msg, b.keyMaterial(sk), pub, aux)));
    sigs.push(bytesToHex(schnorr.sign(msg, sk, aux)));
    assert.equal(new Set(sigs).size, 1, `signature by ${bytesToHex(sk)}`);
    for (const b of backends()) assert.ok(b.verify(hexToBytes(sigs[0]!), msg, pub));
    for (const peerSk of EDGE_SCALARS) {
      const peer = schnorr.getPublicKey(peerSk);
      const xs = backends().map((b) => bytesToHex(b.ecdhX(b.keyMaterial(sk), peer)));
      xs.push(bytesToHex(secp256k1.getSharedSecret(sk, Uint8Array.from([2, ...peer])).subarray(1)));
      assert.equal(new Set(xs).size, 1, `ECDH ${bytesToHex(sk)} x ${bytesToHex(peerSk)}`);
    }
  }
});

// 100,000 cases over the cores: signatures compared byte for byte (deterministic with a given aux),
// verification verdicts on valid and tampered signatures, ECDH on random x (half not on the curve).
const SPLIT: Record<DifferentialKind, number> = { sign: 36_000, verify: 32_000, ecdh: 32_000 };
const NOBLE_EVERY = 250;

function runInWorker(job: DifferentialJob): Promise<DifferentialResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('../support/crypto-differential.js', import.meta.url), {
      workerData: { differential: job },
    });
    worker.once('message', resolve);
    worker.once('error', reject);
    worker.once('exit', (code) => code !== 0 && reject(new Error(`differential worker exited with ${code}`)));
  });
}

test('100,000 random cases: native against WASM on each, against noble on every 250th', async () => {
  const seed = bytesToHex(randomBytes(8));
  const threads = Math.max(1, Math.min(4, availableParallelism()));
  const jobs: DifferentialJob[] = [];
  for (const [kind, total] of Object.entries(SPLIT) as [DifferentialKind, number][]) {
    const per = Math.ceil(total / threads);
    for (let from = 0; from < total; from += per)
      jobs.push({ kind, seed, from, count: Math.min(per, total - from), nobleEvery: NOBLE_EVERY });
  }
  // One worker per core at a time, each taking the next job.
  const results: DifferentialResult[] = [];
  const queue = [...jobs];
  await Promise.all(
    Array.from({ length: threads }, async () => {
      for (let job = queue.shift(); job; job = queue.shift()) results.push(await runInWorker(job));
    }),
  );
  const cases = results.reduce((n, r) => n + r.cases, 0);
  const nobleCases = results.reduce((n, r) => n + r.nobleCases, 0);
  assert.ok(cases >= 100_000, `${cases} cases`);
  assert.ok(nobleCases >= 400, `${nobleCases} noble cases`);
  assert.deepEqual(
    results.flatMap((r) => r.mismatches),
    [],
    `seed ${seed}`,
  );
});
