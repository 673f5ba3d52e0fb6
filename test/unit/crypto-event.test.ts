import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  getEventHash as toolsGetEventHash,
  verifyEvent as toolsVerifyEvent,
  finalizeEvent as toolsFinalizeEvent,
} from 'nostr-tools/pure';
import {
  EVENT_LIMITS,
  EventValidationError,
  finalizeEvent,
  getEventHash,
  serializeEvent,
  validateUnsignedEvent,
  verifyEvent,
} from '../../shared/nostr/event.js';
import { generateSecretKey, getPublicKeyHex, InvalidKeyError } from '../../shared/nostr/keys.js';

const GOOD = {
  kind: 1,
  content: 'hello "world"\n\u0001 ✓',
  tags: [['p', 'a'.repeat(64)], ['t', 'x'], []],
  created_at: 1700000000,
};

test('valid events are accepted as objects or JSON strings; unknown fields are dropped', () => {
  const withExtras = { ...GOOD, id: 'nope', pubkey: 'nope', sig: 'nope', extra: { deep: true } };
  assert.deepEqual(validateUnsignedEvent(withExtras), GOOD);
  assert.deepEqual(validateUnsignedEvent(JSON.stringify(withExtras)), GOOD);
  for (const edge of [
    { kind: 0, created_at: 0 },
    { kind: 65535, created_at: 2 ** 32 - 1 },
    { kind: 30023, created_at: Math.floor(Date.now() / 1000) + 10 * 365 * 86400 },
  ]) {
    assert.deepEqual(validateUnsignedEvent({ ...GOOD, ...edge }), { ...GOOD, ...edge });
  }
  const returned = validateUnsignedEvent(GOOD);
  assert.notEqual(returned.tags, GOOD.tags, 'the tags are copied, not shared with the input');
});

test('each bad field is rejected with an EventValidationError naming it', () => {
  const big = (n: number) => 'a'.repeat(n);
  const cases: [string, unknown, RegExp][] = [
    ['not an object', 42, /^event: must be an object/],
    ['array', [], /^event: must be an object/],
    ['null', null, /^event: must be an object/],
    ['bad JSON', '{"kind":1,', /^event: not valid JSON/],
    ['JSON of a string', '"x"', /^event: must be an object/],
    ['kind missing', { ...GOOD, kind: undefined }, /^event\.kind/],
    ['kind negative', { ...GOOD, kind: -1 }, /^event\.kind/],
    ['kind too big', { ...GOOD, kind: 65536 }, /^event\.kind/],
    ['kind fractional', { ...GOOD, kind: 1.5 }, /^event\.kind/],
    ['kind string', { ...GOOD, kind: '1' }, /^event\.kind/],
    ['content missing', { ...GOOD, content: undefined }, /^event\.content/],
    ['content number', { ...GOOD, content: 5 }, /^event\.content/],
    ['content too long', { ...GOOD, content: big(EVENT_LIMITS.contentBytes + 1) }, /^event\.content: longer/],
    [
      'content too long in UTF-8',
      { ...GOOD, content: '✓'.repeat(EVENT_LIMITS.contentBytes / 3 + 1) },
      /^event\.content: longer/,
    ],
    ['created_at missing', { ...GOOD, created_at: undefined }, /^event\.created_at/],
    ['created_at in ms past 2^32', { ...GOOD, created_at: 2 ** 32 }, /^event\.created_at/],
    ['created_at negative', { ...GOOD, created_at: -1 }, /^event\.created_at/],
    ['created_at fractional', { ...GOOD, created_at: 1.25 }, /^event\.created_at/],
    ['created_at string', { ...GOOD, created_at: '1700000000' }, /^event\.created_at/],
    ['tags missing', { ...GOOD, tags: undefined }, /^event\.tags/],
    ['tags object', { ...GOOD, tags: {} }, /^event\.tags/],
    ['tag not array', { ...GOOD, tags: [['p'], 'e'] }, /^event\.tags\[1\]/],
    ['tag item number', { ...GOOD, tags: [['p', 5]] }, /^event\.tags\[0\]\[1\]/],
    ['tag item null', { ...GOOD, tags: [[null]] }, /^event\.tags\[0\]\[0\]/],
    [
      'too many tags',
      { ...GOOD, tags: Array.from({ length: EVENT_LIMITS.tags + 1 }, () => ['t']) },
      /^event\.tags: more than/,
    ],
    [
      'too many strings in a tag',
      { ...GOOD, tags: [Array.from({ length: EVENT_LIMITS.stringsPerTag + 1 }, () => 'x')] },
      /^event\.tags\[0\]: more than/,
    ],
    [
      'tag string too long',
      { ...GOOD, tags: [['x', big(EVENT_LIMITS.tagStringBytes + 1)]] },
      /^event\.tags\[0\]\[1\]: longer/,
    ],
    [
      'whole event too large',
      { ...GOOD, content: big(200_000), tags: Array.from({ length: 6 }, () => ['x', big(60_000)]) },
      /^event: larger than/,
    ],
    ['JSON input absurdly long', ' '.repeat(EVENT_LIMITS.jsonInputChars + 1), /^event: JSON is too large/],
  ];
  for (const [name, input, pattern] of cases) {
    assert.throws(
      () => validateUnsignedEvent(input),
      (err: Error) => err instanceof EventValidationError && pattern.test(err.message),
      name,
    );
  }
});

test('the signed-size limit holds to the byte, however the content and tags escape', () => {
  const limit = EVENT_LIMITS.eventBytes;
  // Measured apart from the code under test: the signed event as JSON, in UTF-8 bytes.
  const signedSize = (e: { kind: number; content: string; tags: string[][]; created_at: number }) =>
    Buffer.byteLength(JSON.stringify({ ...e, id: 'f'.repeat(64), pubkey: 'f'.repeat(64), sig: 'f'.repeat(128) }));
  // U+0001 becomes \u0001 (6 bytes), '✓' 3 bytes, a lone surrogate \udc00 (6 bytes), 'a' one byte.
  for (const unit of ['\u0001', '✓', '\ud800', 'a']) {
    for (const where of ['content', 'tags'] as const) {
      const event = (n: number) =>
        where === 'content'
          ? { ...GOOD, tags: [], content: unit.repeat(n) }
          : { ...GOOD, content: '', tags: Array.from({ length: 20 }, () => ['x', unit.repeat(n)]) };
      const per = signedSize(event(1)) - signedSize(event(0));
      let n = Math.floor((limit - signedSize(event(0))) / per);
      while (signedSize(event(n + 1)) <= limit) n++;
      const fits = event(n);
      const over = event(n + 1);
      assert.ok(signedSize(fits) <= limit && signedSize(over) > limit);
      // Where a field's own limit comes first, that one answers (tested above).
      if (where === 'content' && Buffer.byteLength(over.content) > EVENT_LIMITS.contentBytes) continue;
      if (where === 'tags' && Buffer.byteLength(unit.repeat(n + 1)) > EVENT_LIMITS.tagStringBytes) continue;
      assert.deepEqual(validateUnsignedEvent(fits).content, fits.content, `${unit} in ${where}: at the limit`);
      assert.throws(
        () => validateUnsignedEvent(over),
        /EventValidationError: event: larger than/,
        `${unit} in ${where}: one unit over`,
      );
    }
  }
});

test('serialization, id and signature match nostr-tools', () => {
  const sk = generateSecretKey();
  const pubkey = getPublicKeyHex(sk);
  const signed = finalizeEvent(GOOD, sk);
  assert.equal(signed.pubkey, pubkey);
  assert.equal(
    serializeEvent(signed),
    JSON.stringify([0, pubkey, GOOD.created_at, GOOD.kind, GOOD.tags, GOOD.content]),
  );
  assert.equal(signed.id, toolsGetEventHash(signed));
  assert.equal(getEventHash(signed), signed.id);
  assert.ok(toolsVerifyEvent({ ...signed }));
  assert.ok(verifyEvent(signed));
  assert.ok(verifyEvent(toolsFinalizeEvent({ ...GOOD }, sk)));
  assert.deepEqual(finalizeEvent(GOOD, sk, pubkey).pubkey, pubkey);
});

test('verifyEvent rejects a changed field, a bad id, a bad sig and malformed events', () => {
  const sk = generateSecretKey();
  const signed = finalizeEvent(GOOD, sk);
  assert.equal(verifyEvent({ ...signed, content: 'changed' }), false);
  assert.equal(verifyEvent({ ...signed, id: 'f'.repeat(64) }), false);
  assert.equal(
    verifyEvent({ ...signed, sig: signed.sig.slice(0, -2) + (signed.sig.endsWith('00') ? '01' : '00') }),
    false,
  );
  assert.equal(verifyEvent({ ...signed, pubkey: getPublicKeyHex(generateSecretKey()) }), false);
  assert.equal(verifyEvent({ ...signed, sig: signed.sig.toUpperCase() }), false);
  assert.equal(verifyEvent({ ...signed, tags: 'x' as unknown as string[][] }), false);
  assert.equal(verifyEvent(null as unknown as typeof signed), false);
});

test('a pubkey that does not belong to the key is refused, and never yields a valid event', () => {
  const sk = generateSecretKey();
  const pubkey = getPublicKeyHex(sk);
  const other = getPublicKeyHex(generateSecretKey());
  assert.throws(() => finalizeEvent(GOOD, sk, other), InvalidKeyError);
  // Also once the signer knows the key: a wrong secret for it is refused, not signed with.
  assert.ok(verifyEvent(finalizeEvent(GOOD, sk, pubkey)));
  assert.throws(() => finalizeEvent(GOOD, generateSecretKey(), pubkey), InvalidKeyError);
  assert.throws(() => finalizeEvent(GOOD, sk, 'NOT-HEX'), InvalidKeyError);
});
