// The payload sealing of RPC content in Redis: AES-256-GCM with a random nonce per seal and an AAD that
// names the job and item. Anything altered, moved to another item, or sealed under another key is refused.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { REDACTED, redactSealed } from '../../dashboards/bull-board.js';
import { PayloadSealError, PayloadSealer, SEALED_PREFIX, isSealed } from '../../shared/farm/payload-seal.js';
import { openReply, openRpcJob, sealReply, sealRpcJob } from '../../shared/farm/rpc-sealing.js';
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
  assert.throws(
    () => new PayloadSealer(randomBytes(32)).open(sealed, 'keyfarm:v1:rpc-call:job-1:item-1'),
    PayloadSealError,
  );
  assert.throws(() => new PayloadSealer(randomBytes(16)), /^RangeError: PayloadSealer: the key must be 32 bytes$/);
});

test('each refusal says why, as a PayloadSealError; undefined seals as null', () => {
  const refused = (fn: () => unknown, message: RegExp) =>
    assert.throws(
      fn,
      (err: Error) => err instanceof PayloadSealError && err.name === 'PayloadSealError' && message.test(err.message),
    );
  refused(() => sealer.open('plain', 'aad'), /^not a sealed value$/);
  // Shorter than nonce and tag is malformed; nonce and tag with an empty body is checked like any seal.
  refused(() => sealer.open(SEALED_PREFIX + randomBytes(27).toString('base64'), 'aad'), /^sealed value is too short$/);
  refused(
    () => sealer.open(SEALED_PREFIX + randomBytes(28).toString('base64'), 'aad'),
    /^sealed value failed authentication/,
  );
  refused(
    () => sealer.open(sealer.seal(1, 'a'), 'b'),
    /^sealed value failed authentication \(altered, another item, or another key\)$/,
  );
  assert.equal(sealer.open(sealer.seal(undefined, 'aad'), 'aad'), null);
});

test('RPC jobs and replies: sealed per job, the calls bound to their items', () => {
  const item = (id: string, plaintext: string): RpcItem => ({
    id,
    traceId: `t-${id}`,
    authorizationId: 'auth',
    keyId: 'key',
    pubkey: 'a'.repeat(64),
    call: { method: 'nip44_encrypt', peer: 'b'.repeat(64), plaintext },
  });
  const items = [item('a', MARKER), item('b', 'other')];
  const job = sealRpcJob(sealer, 'job-1', 'api-1', 'http', items);
  assert.deepEqual(
    job.items.map((i) => [i.id, i.method]),
    [
      ['a', 'nip44_encrypt'],
      ['b', 'nip44_encrypt'],
    ],
    'ids and methods stay readable',
  );
  assert.equal(JSON.stringify(job).includes(MARKER), false);
  assert.deepEqual(openRpcJob(sealer, 'job-1', job), items);
  assert.throws(() => openRpcJob(sealer, 'job-2', job), PayloadSealError, 'calls moved to another job');
  const other = sealRpcJob(sealer, 'job-1', 'api-1', 'http', [item('b', 'x'), item('a', 'y')]);
  assert.throws(
    () => openRpcJob(sealer, 'job-1', { ...job, calls: other.calls }),
    PayloadSealError,
    'calls of other items',
  );
  assert.throws(
    () => openRpcJob(sealer, 'job-1', { ...job, items: [job.items[1]!, job.items[0]!] }),
    PayloadSealError,
    'items reordered',
  );
  assert.throws(
    () => openRpcJob(sealer, 'job-1', { ...job, items: job.items.slice(0, 1) }),
    PayloadSealError,
    'an item dropped',
  );
  assert.throws(
    () =>
      openRpcJob(sealer, 'job-1', { ...job, items: [{ ...job.items[0]!, method: 'nip44_decrypt' }, job.items[1]!] }),
    PayloadSealError,
    'a relabelled method',
  );

  const results = [
    { id: 'a', ok: true as const, result: MARKER },
    { id: 'b', ok: false as const, status: 400, error: 'invalid ciphertext' },
  ];
  const reply = sealReply(sealer, 'job-1', results);
  assert.equal(JSON.stringify(reply).includes(MARKER), false);
  assert.deepEqual(openReply(sealer, reply), results);
  assert.throws(
    () => openReply(sealer, { ...reply, jobId: 'job-2' }),
    PayloadSealError,
    'a reply moved to another job',
  );
  // An unsealed reply (a job that failed for good) is believed only for its errors.
  assert.deepEqual(openReply(sealer, { jobId: 'job-1', results }), [results[1]]);
});

test('Bull Board redaction replaces every sealed string and keeps the rest', () => {
  const job = sealRpcJob(sealer, 'job-1', 'api-1', 'http', [
    {
      id: 'a',
      traceId: 't',
      authorizationId: 'auth',
      keyId: 'key',
      pubkey: 'a'.repeat(64),
      call: { method: 'sign_event', event: { kind: 1, content: MARKER, tags: [], created_at: 1 } },
    },
  ]);
  assert.deepEqual(redactSealed(job), { ...job, calls: REDACTED });
  const reply = sealReply(sealer, 'job-1', [{ id: 'a', ok: true, result: { content: MARKER } }]);
  assert.deepEqual(redactSealed(reply), { jobId: 'job-1', sealedResults: REDACTED });
  assert.deepEqual(redactSealed({ nested: [{ deep: reply.sealedResults }], n: 1 }), {
    nested: [{ deep: REDACTED }],
    n: 1,
  });
  assert.equal(redactSealed(null), null);
});
