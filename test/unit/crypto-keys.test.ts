import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getPublicKey as toolsGetPublicKey } from 'nostr-tools/pure';
import { decode as nip19Decode, nsecEncode as toolsNsecEncode } from 'nostr-tools/nip19';
import {
  generateSecretKey,
  getPublicKeyHex,
  InvalidKeyError,
  isValidPubkeyHex,
  npubEncode,
  nsecEncode,
  parseSecretKey,
} from '../../shared/nostr/keys.js';
import { bytesToHex } from '../../shared/nostr/hex.js';

const CURVE_ORDER_HEX = 'fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141';

test('generated keys are valid and their pubkey matches nostr-tools', () => {
  for (let i = 0; i < 8; i++) {
    const sk = generateSecretKey();
    assert.equal(sk.length, 32);
    assert.equal(getPublicKeyHex(sk), toolsGetPublicKey(sk));
  }
});

test('parseSecretKey accepts nsec and hex of either case, with surrounding whitespace', () => {
  const sk = generateSecretKey();
  const hex = bytesToHex(sk);
  const nsec = toolsNsecEncode(sk);
  for (const input of [hex, hex.toUpperCase(), ` ${hex}\n`, nsec, nsec.toUpperCase()]) {
    assert.equal(bytesToHex(parseSecretKey(input)), hex);
  }
  assert.equal(
    bytesToHex(parseSecretKey('fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364140')),
    'fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364140',
  );
});

test('parseSecretKey rejects malformed, zero and out-of-range keys without echoing the input', () => {
  const sk = generateSecretKey();
  const hex = bytesToHex(sk);
  const nsec = toolsNsecEncode(sk);
  const flipped = nsec.slice(0, -1) + (nsec.endsWith('q') ? 'p' : 'q');
  const cases = [
    '',
    hex.slice(0, 63),
    `${hex}0`,
    `g${hex.slice(1)}`,
    '0'.repeat(64),
    CURVE_ORDER_HEX,
    'f'.repeat(64),
    flipped,
    nsec.slice(0, 10) + nsec.slice(10).toUpperCase(),
    npubEncode(getPublicKeyHex(sk)),
    toolsNsecEncode(new Uint8Array(32)),
  ];
  for (const input of cases) {
    assert.throws(
      () => parseSecretKey(input),
      (err: Error) => err instanceof InvalidKeyError && !(input.length > 8 && err.message.includes(input.slice(5, 25))),
      `input of length ${input.length}`,
    );
  }
  assert.throws(() => parseSecretKey(undefined as unknown as string), InvalidKeyError);
});

test('nsecEncode/npubEncode round-trip through nostr-tools nip19', () => {
  const sk = generateSecretKey();
  const pub = getPublicKeyHex(sk);
  const nsec = nsecEncode(sk);
  const npub = npubEncode(pub);
  assert.match(nsec, /^nsec1/);
  assert.match(npub, /^npub1/);
  const decodedNsec = nip19Decode(nsec);
  assert.equal(decodedNsec.type, 'nsec');
  assert.equal(bytesToHex(decodedNsec.data as Uint8Array), bytesToHex(sk));
  assert.deepEqual(nip19Decode(npub), { type: 'npub', data: pub });
  assert.throws(() => npubEncode(pub.toUpperCase()), InvalidKeyError);
  assert.throws(() => nsecEncode(new Uint8Array(32)), InvalidKeyError);
});

test('isValidPubkeyHex requires 64 lowercase hex of an x coordinate on the curve', () => {
  const pub = getPublicKeyHex(generateSecretKey());
  assert.equal(isValidPubkeyHex(pub), true);
  assert.equal(isValidPubkeyHex(pub.toUpperCase()), false);
  assert.equal(isValidPubkeyHex(pub.slice(2)), false);
  assert.equal(isValidPubkeyHex(`${pub}00`), false);
  assert.equal(isValidPubkeyHex('f'.repeat(64)), false, 'above the field size');
  assert.equal(
    isValidPubkeyHex('eefdea4cdb677750a420fee807eacf21eb9898ae79b9768766e4faa04a2d4a34'),
    false,
    'BIP-340 row 5: not on the curve',
  );
  assert.equal(isValidPubkeyHex('0'.repeat(64)), false);
  assert.equal(isValidPubkeyHex(42), false);
});
