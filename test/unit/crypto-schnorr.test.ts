import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { fastSchnorr, referenceSchnorr, type SchnorrBackend } from '../../shared/nostr/schnorr.js';
import { bytesToHex, hexToBytes } from '../../shared/nostr/hex.js';
import { generateSecretKey, InvalidKeyError } from '../../shared/nostr/keys.js';
import { KnownKeySigner } from '../../shared/nostr/known-key-signer.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { bip340Vectors } from './crypto-vectors/load.js';

const BACKENDS: SchnorrBackend[] = [fastSchnorr, referenceSchnorr];
const rows = bip340Vectors();

for (const backend of BACKENDS) {
  test(`BIP-340 vectors sign exactly with the given aux (${backend.name})`, () => {
    const signing = rows.filter((row) => row.secretKey !== '');
    assert.equal(signing.length, 4);
    for (const row of signing) {
      const sk = hexToBytes(row.secretKey);
      assert.equal(bytesToHex(backend.getPublicKey(sk)), row.publicKey.toLowerCase(), `row ${row.index} pubkey`);
      const sig = backend.sign(hexToBytes(row.message), sk, hexToBytes(row.auxRand));
      assert.equal(bytesToHex(sig), row.signature.toLowerCase(), `row ${row.index} signature`);
    }
  });

  test(`BIP-340 vectors verify as expected, failures included (${backend.name})`, () => {
    assert.equal(rows.length, 15);
    for (const row of rows) {
      const ok = backend.verify(hexToBytes(row.signature), hexToBytes(row.message), hexToBytes(row.publicKey));
      assert.equal(ok, row.valid, `row ${row.index} ${row.comment}`);
    }
  });

  test(`verify returns false, never throws, on malformed input (${backend.name})`, () => {
    const sk = generateSecretKey();
    const msg = randomBytes(32);
    const sig = backend.sign(msg, sk);
    const pub = backend.getPublicKey(sk);
    assert.equal(backend.verify(sig.subarray(0, 63), msg, pub), false);
    assert.equal(backend.verify(sig, msg.subarray(0, 31), pub), false);
    assert.equal(backend.verify(sig, msg, new Uint8Array(32).fill(0xff)), false);
    assert.equal(backend.verify(sig, msg, new Uint8Array(33)), false);
  });

  test(`sign rejects an out-of-range secret key without echoing it (${backend.name})`, () => {
    const msg = randomBytes(32);
    const order = hexToBytes('fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141');
    for (const sk of [new Uint8Array(32), order, new Uint8Array(31).fill(1)]) {
      assert.throws(
        () => backend.sign(msg, sk),
        (err: Error) => !err.message.includes(bytesToHex(sk)),
      );
      assert.throws(() => backend.getPublicKey(sk));
    }
  });
}

test('random aux by default: two signatures of one message differ and both verify', () => {
  const sk = generateSecretKey();
  const msg = randomBytes(32);
  const pub = fastSchnorr.getPublicKey(sk);
  const a = fastSchnorr.sign(msg, sk);
  const b = fastSchnorr.sign(msg, sk);
  assert.notEqual(bytesToHex(a), bytesToHex(b));
  assert.ok(fastSchnorr.verify(a, msg, pub));
  assert.ok(fastSchnorr.verify(b, msg, pub));
});

test('fast and reference backends agree on random keys (sign with one, verify with the other)', () => {
  for (let i = 0; i < 16; i++) {
    const sk = generateSecretKey();
    const msg = randomBytes(32);
    const aux = randomBytes(32);
    const pub = fastSchnorr.getPublicKey(sk);
    assert.equal(bytesToHex(referenceSchnorr.getPublicKey(sk)), bytesToHex(pub));
    const fastSig = fastSchnorr.sign(msg, sk, aux);
    const refSig = referenceSchnorr.sign(msg, sk, aux);
    assert.equal(bytesToHex(fastSig), bytesToHex(refSig), 'same aux gives the same signature');
    assert.ok(referenceSchnorr.verify(fastSchnorr.sign(msg, sk), msg, pub));
    assert.ok(fastSchnorr.verify(referenceSchnorr.sign(msg, sk), msg, pub));
    const tampered = Uint8Array.from(fastSig);
    tampered[5] = (tampered[5] as number) ^ 1;
    assert.equal(fastSchnorr.verify(tampered, msg, pub), false);
    assert.equal(referenceSchnorr.verify(tampered, msg, pub), false);
  }
});

test('KnownKeySigner signs the BIP-340 vectors byte for byte (odd- and even-y keys)', () => {
  const signer = new KnownKeySigner();
  for (const row of rows.filter((r) => r.secretKey !== '')) {
    const sig = signer.sign(
      hexToBytes(row.message),
      hexToBytes(row.secretKey),
      hexToBytes(row.publicKey.toLowerCase()),
      hexToBytes(row.auxRand),
    );
    assert.equal(bytesToHex(sig), row.signature.toLowerCase(), `row ${row.index}`);
  }
});

test('KnownKeySigner equals libsecp256k1 sign for random keys, first use and remembered parity alike', () => {
  const signer = new KnownKeySigner();
  let odd = 0;
  for (let i = 0; i < 64; i++) {
    const sk = generateSecretKey();
    const pub = fastSchnorr.getPublicKey(sk);
    if (secp256k1.getPublicKey(sk, true)[0] === 3) odd++;
    for (let round = 0; round < 2; round++) {
      const msg = randomBytes(32);
      const aux = randomBytes(32);
      const sig = signer.sign(msg, sk, pub, aux);
      assert.equal(bytesToHex(sig), bytesToHex(fastSchnorr.sign(msg, sk, aux)));
      assert.ok(referenceSchnorr.verify(sig, msg, pub));
    }
  }
  assert.ok(odd > 0 && odd < 64, 'both parities were exercised');
  assert.equal(signer.size, 64);
});

test('KnownKeySigner refuses a secret that is not the public key’s, bad lengths and out-of-range keys', () => {
  const signer = new KnownKeySigner();
  const sk = generateSecretKey();
  const msg = randomBytes(32);
  const otherPub = fastSchnorr.getPublicKey(generateSecretKey());
  assert.throws(
    () => signer.sign(msg, sk, otherPub),
    (err: Error) => err instanceof InvalidKeyError && !err.message.includes(bytesToHex(sk)),
  );
  assert.equal(signer.size, 0, 'a refused key is not remembered');
  const pub = fastSchnorr.getPublicKey(sk);
  assert.throws(() => signer.sign(msg.subarray(0, 31), sk, pub), TypeError);
  assert.throws(() => signer.sign(msg, sk, pub.subarray(0, 31)), TypeError);
  assert.throws(() => signer.sign(msg, sk, pub, new Uint8Array(31)), TypeError);
  assert.throws(() => signer.sign(msg, new Uint8Array(32), pub), RangeError);
  // A remembered key with a wrong secret is refused too, every time.
  signer.sign(msg, sk, pub);
  for (let i = 0; i < 2; i++) assert.throws(() => signer.sign(msg, generateSecretKey(), pub), InvalidKeyError);
  assert.ok(fastSchnorr.verify(signer.sign(msg, sk, pub), msg, pub), 'the right secret still signs');
});

test('KnownKeySigner signs with either secret of an x-only key (d and n − d), alternating', () => {
  const signer = new KnownKeySigner();
  const sk = generateSecretKey();
  const negated = hexToBytes(
    (secp256k1.Point.CURVE().n - BigInt(`0x${bytesToHex(sk)}`)).toString(16).padStart(64, '0'),
  );
  const pub = fastSchnorr.getPublicKey(sk);
  assert.equal(bytesToHex(fastSchnorr.getPublicKey(negated)), bytesToHex(pub));
  for (const key of [sk, negated, sk, negated]) {
    const msg = randomBytes(32);
    const aux = randomBytes(32);
    assert.equal(bytesToHex(signer.sign(msg, key, pub, aux)), bytesToHex(fastSchnorr.sign(msg, key, aux)));
  }
  assert.equal(signer.size, 1);
});

test('KnownKeySigner forgets the oldest key past its bound and still signs it correctly', () => {
  const signer = new KnownKeySigner(2);
  const keys = [generateSecretKey(), generateSecretKey(), generateSecretKey()];
  const msg = randomBytes(32);
  for (const sk of keys) signer.sign(msg, sk, fastSchnorr.getPublicKey(sk));
  assert.equal(signer.size, 2);
  const first = keys[0]!;
  const pub = fastSchnorr.getPublicKey(first);
  assert.ok(fastSchnorr.verify(signer.sign(msg, first, pub), msg, pub));
});
