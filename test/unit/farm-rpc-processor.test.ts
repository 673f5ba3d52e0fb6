import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import { createLogger } from '../../shared/logger.js';
import { KeyManagerUnavailableError } from '../../shared/custody/key-manager.js';
import { KeyNotFoundError } from '../../shared/custody/key-store.js';
import { randomBytes } from 'node:crypto';
import type { ReplyMessage, RpcItem, RpcJobData, SealedReplyMessage } from '../../shared/farm/jobs.js';
import { PayloadSealer } from '../../shared/farm/payload-seal.js';
import { openReply, sealRpcJob } from '../../shared/farm/rpc-sealing.js';
import { ShardNames } from '../../shared/shard.js';
import type { ActivityEntry } from '../../workers/activity.js';
import type { CryptoOp, CryptoResult, CryptoRunner, KeyOp } from '../../workers/crypto/types.js';
import { KeyCache } from '../../workers/key-cache.js';
import { cryptoBackend } from '../../shared/nostr/crypto-backend.js';
import { createRpcProcessor } from '../../workers/rpc-processor.js';

const PUB = 'a'.repeat(64);
const PEER = 'b'.repeat(64);
const logger = createLogger({ level: 'silent' });
const sealer = new PayloadSealer(randomBytes(32));

/** A job as the api makes it: every call sealed for this job. */
const job = (jobId: string, items: RpcItem[], replyTo = 'api-1'): RpcJobData =>
  sealRpcJob(sealer, jobId, replyTo, 'http', items);

/** The reply with its results opened, as the api reads it. */
const opened = (reply: SealedReplyMessage): ReplyMessage => ({ jobId: reply.jobId, results: openReply(sealer, reply) });

/** Answers each op without real crypto; records each run and the secret bytes it saw. */
class FakeCrypto implements CryptoRunner {
  runs: CryptoOp[][] = [];
  seenSecrets: number[][] = [];
  async run(ops: CryptoOp[]): Promise<CryptoResult[]> {
    this.runs.push(ops);
    this.seenSecrets.push(ops.map((o) => (o as KeyOp).sk[0]!));
    return ops.map((o): CryptoResult => {
      if (o.op === 'sign_event')
        return { ok: true, value: { ...o.event, id: 'e'.repeat(64), pubkey: o.pubkey, sig: 'f'.repeat(128) } };
      if (o.op === 'nip44_decrypt' && o.ciphertext === 'bad') return { ok: false, error: 'invalid ciphertext' };
      if (o.op === 'nip44_encrypt')
        return { ok: true, value: `enc:${o.plaintext}`, convKey: o.convKey ? undefined : new Uint8Array(32).fill(7) };
      return { ok: true, value: 'x' };
    });
  }
  async close(): Promise<void> {}
}

function setup(loadImpl: (keyId: string) => Promise<{ secretKey: Uint8Array; pubkey: string }>) {
  const published: [string, ReplyMessage][] = [];
  const publisher = {
    publish: async (ch: string, msg: string) => (published.push([ch, JSON.parse(msg)]), 1),
  } as unknown as Redis;
  const activity: ActivityEntry[] = [];
  const crypto = new FakeCrypto();
  const cache = new KeyCache(1 << 20);
  const loads: string[] = [];
  const names = new ShardNames('kfu');
  const processor = createRpcProcessor({
    cache,
    crypto,
    publisher,
    names,
    logger,
    sealer,
    activity: { record: (e) => activity.push(e) },
    keyLoader: { load: (id) => (loads.push(id), loadImpl(id)) },
  });
  return { processor, published, activity, crypto, cache, loads, names };
}

const item = (id: string, call: RpcItem['call'], keyId = 'key-1', pubkey = PUB): RpcItem => ({
  id,
  traceId: `trace-${id}`,
  authorizationId: 'auth-1',
  keyId,
  pubkey,
  call,
});

test('runs every op of a job in one crypto call and answers each item', async () => {
  const { processor, published, activity, crypto, loads, cache } = setup(async () => ({
    secretKey: new Uint8Array(32).fill(5),
    pubkey: PUB,
  }));
  const data = job('job-1', [
    item('1', { method: 'ping' }),
    item('2', { method: 'get_public_key' }),
    item('3', { method: 'sign_event', event: { kind: 1, content: 'hi', tags: [], created_at: 1 } }),
    item('4', { method: 'nip44_encrypt', peer: PEER, plaintext: 'p' }),
    item('5', { method: 'nip44_decrypt', peer: PEER, ciphertext: 'bad' }),
  ]);
  const sealedReply = await processor('job-1', data);
  const reply = opened(sealedReply);
  assert.equal(crypto.runs.length, 1, 'one crypto call per job');
  assert.equal(crypto.runs[0]!.length, 3, 'ping and get_public_key need no crypto');
  assert.deepEqual(crypto.seenSecrets[0], [5, 5, 5]);
  assert.equal(loads.length, 1, 'one key load for the job');
  assert.deepEqual(
    reply.results.map((r) => (r.ok ? 200 : r.status)),
    [200, 200, 200, 200, 400],
  );
  assert.equal(reply.results[0]!.ok && reply.results[0]!.result, 'pong');
  assert.equal(reply.results[1]!.ok && reply.results[1]!.result, PUB);
  assert.deepEqual(reply.results[4], { id: '5', ok: false, status: 400, error: 'invalid ciphertext' });
  assert.deepEqual(published, [], 'the processor returns the reply; the shard worker publishes it');
  assert.equal(JSON.stringify(sealedReply).includes(PUB), false, 'results leave sealed');
  assert.deepEqual(
    activity.map((a) => [a.method, a.kind, a.eventId, a.door]),
    [
      ['ping', undefined, undefined, 'http'],
      ['get_public_key', undefined, undefined, 'http'],
      ['sign_event', 1, 'e'.repeat(64), 'http'],
      ['nip44_encrypt', undefined, undefined, 'http'],
    ],
  );
  // The op buffers were copies, zeroed after the run; the cached key is intact.
  assert.ok(crypto.runs[0]!.every((o) => (o as KeyOp).sk.every((b) => b === 0)));
  assert.deepEqual(cache.peekKey('key-1')!.secretKey, cryptoBackend().keyMaterial(new Uint8Array(32).fill(5)));
  // The computed conversation key is cached and handed to the next op (as a copy).
  assert.ok(cache.getConvKey('key-1', PEER, 'nip44'));
  await processor('job-2', job('job-2', [item('6', { method: 'nip44_encrypt', peer: PEER, plaintext: 'q' })]));
  const op = crypto.runs[1]![0]!;
  assert.ok(op.op === 'nip44_encrypt' && op.convKey && op.convKey !== cache.getConvKey('key-1', PEER, 'nip44'));
  assert.equal(loads.length, 1, 'the warm key is not loaded again');
});

test('maps key errors to statuses without failing the other items', async () => {
  const { processor, crypto } = setup(async (id) => {
    if (id === 'missing') throw new KeyNotFoundError('key not found');
    if (id === 'kms-down') throw new KeyManagerUnavailableError('kms unreachable');
    if (id === 'other') return { secretKey: new Uint8Array(32).fill(1), pubkey: 'c'.repeat(64) };
    // Only the class says "not found": an error merely named or worded so is an unavailable key.
    if (id === 'look-alike') throw Object.assign(new Error('key not found'), { name: 'KeyNotFoundError' });
    return { secretKey: new Uint8Array(32).fill(2), pubkey: PUB };
  });
  const sign: RpcItem['call'] = { method: 'sign_event', event: { kind: 1, content: '', tags: [], created_at: 1 } };
  const reply = opened(
    await processor(
      'job-3',
      job('job-3', [
        item('a', sign, 'missing'),
        item('b', sign, 'kms-down'),
        item('c', sign, 'other'),
        item('d', sign, 'good'),
        item('e', sign, 'look-alike'),
      ]),
    ),
  );
  assert.deepEqual(
    reply.results.map((r) => (r.ok ? 200 : `${r.status} ${r.error}`)),
    ['404 key not found', '503 key manager unavailable', '500 key integrity check failed', 200, '503 key unavailable'],
  );
  assert.equal(crypto.runs.length, 1);
  assert.equal(crypto.runs[0]!.length, 1);
});

test('a crypto pool failure fails the attempt (the shard worker tries again) and zeroes the copies', async () => {
  const published: string[] = [];
  let seen: CryptoOp[] = [];
  const broken: CryptoRunner = {
    run: async (ops) => {
      seen = ops;
      throw new Error('pool crashed');
    },
    close: async () => {},
  };
  const p = createRpcProcessor({
    cache: new KeyCache(1 << 20),
    crypto: broken,
    publisher: { publish: async (_ch: string, msg: string) => (published.push(msg), 1) } as unknown as Redis,
    names: new ShardNames('kfu'),
    logger,
    sealer,
    activity: { record: () => {} },
    keyLoader: { load: async () => ({ secretKey: new Uint8Array(32).fill(3), pubkey: PUB }) },
  });
  await assert.rejects(
    p('job-4', job('job-4', [item('z', { method: 'nip04_encrypt', peer: PEER, plaintext: 'm' })], 'x')),
    /pool crashed/,
  );
  assert.ok((seen[0] as KeyOp).sk.every((b) => b === 0));
  assert.equal(published.length, 0);
});

test("a job whose calls do not open (another job's, altered, another key) runs nothing and answers 500", async () => {
  const { processor, crypto, activity } = setup(async () => ({
    secretKey: new Uint8Array(32).fill(4),
    pubkey: PUB,
  }));
  const sign = (content: string): RpcItem['call'] => ({
    method: 'sign_event',
    event: { kind: 1, content, tags: [], created_at: 1 },
  });
  const items = [item('a', sign('mine')), item('b', sign('mine too'))];
  const moved = { ...job('job-5', items), calls: job('job-other', items).calls };
  const foreign = sealRpcJob(new PayloadSealer(randomBytes(32)), 'job-6', 'api-1', 'http', items);
  const good = job('job-7', items);
  const altered = { ...good, calls: good.calls.slice(0, -4) + (good.calls.endsWith('AAAA') ? 'BBBB' : 'AAAA') };
  for (const [jobId, data] of [
    ['job-5', moved],
    ['job-6', foreign],
    ['job-7', altered],
  ] as const) {
    const reply = opened(await processor(jobId, data));
    assert.deepEqual(
      reply.results.map((r) => (r.ok ? 200 : `${r.status} ${r.error}`)),
      ['500 calls could not be opened', '500 calls could not be opened'],
      jobId,
    );
  }
  assert.equal(crypto.runs.length, 0, 'nothing reached the crypto pool');
  assert.equal(activity.length, 0);
  const ok = opened(await processor('job-7', good));
  assert.deepEqual(
    ok.results.map((r) => r.ok && (r.result as { content: string }).content),
    ['mine', 'mine too'],
  );
});
