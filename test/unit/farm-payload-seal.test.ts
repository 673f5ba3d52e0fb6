// The payload sealing of RPC content in Redis: AES-256-GCM with a random nonce per seal and an AAD that
// names the job and item. Anything altered, moved to another item, or sealed under another key is refused.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { REDACTED, redactSealed } from '../../dashboards/bull-board.js';
import { PayloadSealError, PayloadSealer, SEALED_PREFIX, isSealed } from '../../shared/farm/payload-seal.js';
import { openResult, openRpcItem, sealResult, sealRpcItem } from '../../shared/farm/rpc-sealing.js';
import type { RpcItem } from '../../shared/farm/jobs.js';

const sealer = new PayloadSealer(randomBytes(32));
const MARKER = `marker-${randomBytes(6).toString('hex')}`;

/** The sealed string with one byte of its binary form flipped at `at` (negative: from the end). */
function flip(sealed: string, at: number): string {
  const raw = Buffer.from(sealed.slice(SEALED_PREFIX.length), 'base64');
  const i = at < 0 ? raw.length + at : at;
  raw[i] = raw[i]! ^ 0x01;
  return SEALED_PREFIX + raw.toString('base64');
}

test('a sealed value opens to itself under its AAD, and shows nothing of it', () => {
  const value = { plaintext: MARKER, n: 1, list: ['a', null] };
  const sealed = sealer.seal(value, 'aad-1');
  assert.ok(isSealed(sealed));
  for (const form of [MARKER, Buffer.from(MARKER).toString('base64'), Buffer.from(MARKER).toString('hex')]) {
    assert.equal(sealed.includes(form), false, `no ${form} in the sealed string`);
  }
  assert.deepEqual(sealer.open(sealed, 'aad-1'), value);
  assert.notEqual(sealer.seal(value, 'aad-1'), sealed, 'a fresh nonce every seal');
});

test('tampering anywhere is refused: nonce, ciphertext, tag, truncation', () => {
  const sealed = sealer.seal({ plaintext: MARKER }, 'aad');
  for (const at of [0, 11, 12, 20, -17, -1]) {
    assert.throws(() => sealer.open(flip(sealed, at), 'aad'), PayloadSealError, `byte ${at} flipped`);
  }
  assert.throws(() => sealer.open(sealed.slice(0, -8), 'aad'), PayloadSealError, 'truncated');
  assert.throws(() => sealer.open(`${SEALED_PREFIX}AAAA`, 'aad'), PayloadSealError, 'too short');
  assert.throws(() => sealer.open(JSON.stringify({ plaintext: MARKER }), 'aad'), PayloadSealError, 'not sealed at all');
  assert.throws(() => sealer.open({ plaintext: MARKER }, 'aad'), PayloadSealError, 'not even a string');
});

test('a wrong AAD or another key is refused', () => {
  const sealed = sealer.seal(MARKER, 'keyfarm:v1:rpc-call:job-1:item-1');
  assert.throws(() => sealer.open(sealed, 'keyfarm:v1:rpc-call:job-1:item-2'), PayloadSealError);
  assert.throws(() => sealer.open(sealed, 'keyfarm:v1:rpc-call:job-2:item-1'), PayloadSealError);
  assert.throws(() => new PayloadSealer(randomBytes(32)).open(sealed, 'keyfarm:v1:rpc-call:job-1:item-1'), PayloadSealError);
  assert.throws(() => new PayloadSealer(randomBytes(16)), RangeError);
});

test('RPC items and results: sealed per job and item, a swap between them is refused', () => {
  const item = (id: string, plaintext: string): RpcItem => ({
    id, traceId: `t-${id}`, authorizationId: 'auth', keyId: 'key', pubkey: 'a'.repeat(64),
    call: { method: 'nip44_encrypt', peer: 'b'.repeat(64), plaintext },
  });
  const a = sealRpcItem(sealer, 'job-1', item('a', MARKER));
  const b = sealRpcItem(sealer, 'job-1', item('b', 'other'));
  assert.equal(a.method, 'nip44_encrypt', 'the method stays readable');
  assert.equal(JSON.stringify(a).includes(MARKER), false);
  assert.deepEqual(openRpcItem(sealer, 'job-1', a), item('a', MARKER));
  assert.throws(() => openRpcItem(sealer, 'job-1', { ...b, call: a.call }), PayloadSealError, 'a call moved to another item');
  assert.throws(() => openRpcItem(sealer, 'job-2', a), PayloadSealError, 'an item moved to another job');
  assert.throws(() => openRpcItem(sealer, 'job-1', { ...a, method: 'sign_event' }), PayloadSealError, 'a relabelled method');

  const ok = sealResult(sealer, 'job-1', { id: 'a', ok: true, result: MARKER });
  assert.equal(JSON.stringify(ok).includes(MARKER), false);
  assert.deepEqual(openResult(sealer, 'job-1', ok), { id: 'a', ok: true, result: MARKER });
  assert.throws(() => openResult(sealer, 'job-1', { ...ok, id: 'b' }), PayloadSealError, 'a result moved to another item');
  const err = { id: 'a', ok: false as const, status: 400, error: 'invalid ciphertext' };
  assert.deepEqual(sealResult(sealer, 'job-1', err), err, 'errors carry no content and stay as they are');
});

test('Bull Board redaction replaces every sealed string and keeps the rest', () => {
  const sealed = sealRpcItem(sealer, 'job-1', {
    id: 'a', traceId: 't', authorizationId: 'auth', keyId: 'key', pubkey: 'a'.repeat(64),
    call: { method: 'sign_event', event: { kind: 1, content: MARKER, tags: [], created_at: 1 } },
  });
  const data = { type: 'rpc', replyTo: 'api-1', items: [sealed] };
  assert.deepEqual(redactSealed(data), { type: 'rpc', replyTo: 'api-1', items: [{ ...sealed, call: REDACTED }] });
  const reply = { jobId: 'job-1', results: [sealResult(sealer, 'job-1', { id: 'a', ok: true, result: { content: MARKER } })] };
  assert.deepEqual(redactSealed(reply), { jobId: 'job-1', results: [{ id: 'a', ok: true, result: REDACTED }] });
  assert.equal(redactSealed(null), null);
});
