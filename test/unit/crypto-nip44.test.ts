import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { v2 as toolsNip44 } from 'nostr-tools/nip44';
import {
  calcPaddedLen,
  getConversationKey,
  getMessageKeys,
  Nip44Error,
  nip44Decrypt,
  nip44Encrypt,
  unpad,
} from '../../shared/nostr/nip44.js';
import { InvalidKeyError, generateSecretKey, getPublicKeyHex } from '../../shared/nostr/keys.js';
import { bytesToHex, hexToBytes } from '../../shared/nostr/hex.js';
import { nip44Vectors } from './crypto-vectors/load.js';

const { valid, invalid } = nip44Vectors().v2;
const sha256Hex = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');

test('valid.get_conversation_key: every vector', () => {
  assert.equal(valid.get_conversation_key.length, 35);
  for (const v of valid.get_conversation_key) {
    assert.equal(bytesToHex(getConversationKey(hexToBytes(v.sec1), v.pub2)), v.conversation_key, v.pub2);
  }
});

test('valid.get_message_keys: every vector', () => {
  const convKey = hexToBytes(valid.get_message_keys.conversation_key);
  for (const v of valid.get_message_keys.keys) {
    const keys = getMessageKeys(convKey, hexToBytes(v.nonce));
    assert.equal(bytesToHex(keys.chachaKey), v.chacha_key);
    assert.equal(bytesToHex(keys.chachaNonce), v.chacha_nonce);
    assert.equal(bytesToHex(keys.hmacKey), v.hmac_key);
  }
});

test('valid.calc_padded_len: every vector', () => {
  for (const [len, padded] of valid.calc_padded_len) assert.equal(calcPaddedLen(len), padded, `len ${len}`);
});

test('valid.encrypt_decrypt: both directions, exact payloads with the given nonces', () => {
  for (const v of valid.encrypt_decrypt) {
    const sec1 = hexToBytes(v.sec1);
    const sec2 = hexToBytes(v.sec2);
    const key12 = getConversationKey(sec1, getPublicKeyHex(sec2));
    const key21 = getConversationKey(sec2, getPublicKeyHex(sec1));
    assert.equal(bytesToHex(key12), v.conversation_key);
    assert.equal(bytesToHex(key21), v.conversation_key);
    assert.equal(nip44Encrypt(v.plaintext, key12, hexToBytes(v.nonce)), v.payload);
    assert.equal(nip44Decrypt(v.payload, key21), v.plaintext);
  }
});

test('valid.encrypt_decrypt_long_msg: payload and plaintext by sha256', () => {
  for (const v of valid.encrypt_decrypt_long_msg) {
    const plaintext = v.pattern.repeat(v.repeat);
    assert.equal(sha256Hex(plaintext), v.plaintext_sha256);
    const convKey = hexToBytes(v.conversation_key);
    const payload = nip44Encrypt(plaintext, convKey, hexToBytes(v.nonce));
    assert.equal(sha256Hex(payload), v.payload_sha256);
    assert.equal(nip44Decrypt(payload, convKey), plaintext);
  }
});

test('invalid.get_conversation_key: every vector throws a key error', () => {
  assert.equal(invalid.get_conversation_key.length, 8);
  for (const v of invalid.get_conversation_key) {
    assert.throws(() => getConversationKey(hexToBytes(v.sec1), v.pub2), InvalidKeyError, v.note);
  }
});

test('invalid.decrypt: every vector throws a Nip44Error naming the problem', () => {
  assert.equal(invalid.decrypt.length, 12);
  const expectedKind: Record<string, RegExp> = {
    'unknown encryption version': /unknown encryption version/,
    'unknown encryption version 0': /unknown encryption version/,
    'invalid base64': /invalid base64/,
    'invalid MAC': /invalid MAC/,
    'invalid padding': /invalid padding/,
  };
  for (const v of invalid.decrypt) {
    const pattern = expectedKind[v.note] ?? /invalid payload length/;
    assert.throws(
      () => nip44Decrypt(v.payload, hexToBytes(v.conversation_key)),
      (err: Error) =>
        err instanceof Nip44Error && pattern.test(err.message) && !err.message.includes(v.conversation_key),
      v.note,
    );
  }
});

test('encrypt_msg_lengths: 0 is invalid; 65536, 100000 and 10000000 round-trip under the extended-length spec', () => {
  const convKey = randomBytes(32);
  assert.deepEqual(invalid.encrypt_msg_lengths, [0, 65536, 100000, 10000000]);
  assert.throws(() => nip44Encrypt('', convKey), /invalid plaintext length/);
  for (const len of [65536, 100000, 10000000]) {
    const plaintext = 'a'.repeat(len);
    const payload = nip44Encrypt(plaintext, convKey);
    const raw = Buffer.from(payload, 'base64');
    // version + nonce + (6-byte extended prefix + padded body) + MAC
    assert.equal(raw.length, 1 + 32 + 6 + calcPaddedLen(len) + 32, `payload size for ${len}`);
    assert.equal(nip44Decrypt(payload, convKey), plaintext);
  }
});

test('the length-prefix boundary: 65535 bytes use the 2-byte prefix, 65536 the 6-byte one', () => {
  const convKey = randomBytes(32);
  const short = Buffer.from(nip44Encrypt('b'.repeat(65535), convKey), 'base64');
  const long = Buffer.from(nip44Encrypt('b'.repeat(65536), convKey), 'base64');
  assert.equal(short.length, 1 + 32 + 2 + 65536 + 32);
  assert.equal(long.length, 1 + 32 + 6 + 65536 + 32);
});

test('unpad refuses an extended prefix carrying a short length, and truncated blobs', () => {
  const fake = Buffer.alloc(6 + 32);
  fake.writeUInt32BE(5, 2);
  assert.throws(() => unpad(fake), /invalid padding/);
  assert.throws(() => unpad(new Uint8Array(1)), /invalid padding/);
  assert.throws(() => unpad(Uint8Array.of(0, 0, 0)), /invalid padding/);
});

test('byte-compatible with nostr-tools for random keys, both ways, short and extended messages', () => {
  for (let i = 0; i < 6; i++) {
    const skA = generateSecretKey();
    const skB = generateSecretKey();
    const pubB = getPublicKeyHex(skB);
    const ours = getConversationKey(skA, pubB);
    assert.equal(bytesToHex(ours), bytesToHex(toolsNip44.utils.getConversationKey(skA, pubB)));
    const nonce = randomBytes(32);
    const plaintext = `message ${i} ✓ ${'x'.repeat(i * 997)}`;
    const payload = nip44Encrypt(plaintext, ours, nonce);
    assert.equal(payload, toolsNip44.encrypt(plaintext, ours, nonce));
    assert.equal(toolsNip44.decrypt(payload, ours), plaintext);
    assert.equal(nip44Decrypt(toolsNip44.encrypt(plaintext, ours), ours), plaintext);
  }
  const convKey = randomBytes(32);
  const nonce = randomBytes(32);
  for (const len of [65535, 65536, 100000]) {
    const plaintext = 'z'.repeat(len);
    assert.equal(
      nip44Encrypt(plaintext, convKey, nonce),
      toolsNip44.encrypt(plaintext, convKey, nonce),
      `length ${len}`,
    );
  }
});

test('tampering and wrong keys are refused with clear errors', () => {
  const convKey = randomBytes(32);
  const payload = nip44Encrypt('hello', convKey);
  assert.throws(() => nip44Decrypt(payload, randomBytes(32)), /invalid MAC/);
  const raw = Buffer.from(payload, 'base64');
  raw[40] = (raw[40] as number) ^ 1;
  assert.throws(() => nip44Decrypt(raw.toString('base64'), convKey), /invalid MAC/);
  assert.throws(() => nip44Decrypt(`${payload.slice(0, -4)}!!!!`, convKey), /invalid base64/);
  assert.throws(() => nip44Decrypt(42 as unknown as string, convKey), /payload must be a string/);
  assert.throws(() => nip44Encrypt('x', randomBytes(31)), /conversation key/);
});
