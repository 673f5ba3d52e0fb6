// The farm's request path on the real Redis: RpcClient -> shard queue -> startWorkers -> reply.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { createRedis } from '../../shared/redis.js';
import { verifyEvent, type Event } from 'nostr-tools/pure';
import { ShardQueue } from '../../shared/farm/shard-queue.js';
import type { ItemResult, RpcItem, RpcJobData } from '../../shared/farm/jobs.js';
import { RpcClient, type RpcClientOptions } from '../../shared/farm/rpc-client.js';
import { registry } from '../../shared/metrics.js';
import { type ShardNames, shardOf } from '../../shared/shard.js';
import { CryptoPool } from '../../workers/crypto/pool.js';
import { startWorkers, type Workers } from '../../workers/index.js';
import type { ActivityEntry } from '../../workers/activity.js';
import {
  FakeCrypto,
  FakeKeyLoader,
  REDIS_TARGET,
  queuedJobs,
  deleteByPrefix,
  noActivity,
  pubkeyOf,
  quietLogger,
  signItem,
  testSealer,
  uniquePrefix,
  waitFor,
  workersConfig,
} from './farm-fixtures.js';
import { suiteShardNames } from '../support/env.js';

const logger = quietLogger();
const prefixes: string[] = [];
const closers: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c().catch(() => undefined);
  for (const p of prefixes) await deleteByPrefix(p);
});

function farmPrefix(): { prefix: string; names: ShardNames } {
  const prefix = uniquePrefix();
  prefixes.push(prefix);
  return { prefix, names: suiteShardNames(prefix, 4) };
}

async function client(names: ShardNames, opts: Partial<RpcClientOptions> = {}): Promise<RpcClient> {
  const c = new RpcClient({
    redisUrl: REDIS_TARGET,
    names,
    shardCount: 4,
    queueLimit: 4096,
    timeoutMs: 10_000,
    instanceId: `api-${names.prefix}-${closers.length}`,
    logger,
    sealer: testSealer,
    ...opts,
  });
  await c.start();
  closers.push(() => c.close());
  return c;
}

async function workers(
  prefix: string,
  opts: Partial<Parameters<typeof startWorkers>[0]> = {},
  cfg = {},
): Promise<Workers> {
  const w = await startWorkers({
    config: workersConfig(prefix, cfg),
    logger,
    keyLoader: new FakeKeyLoader(),
    crypto: new FakeCrypto(),
    activity: noActivity,
    sealer: testSealer,
    redisUrl: REDIS_TARGET,
    ...opts,
  });
  closers.push(() => w.stop());
  return w;
}

async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  const v = m?.values.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return Number(v?.value ?? 0);
}

const statusOf = (r: ItemResult) => (r.ok ? 200 : r.status);

test('round trip through the real crypto pool: sign, encrypt and decrypt, ping', async () => {
  const { prefix, names } = farmPrefix();
  const pool = new CryptoPool({ threads: 1 });
  closers.push(() => pool.close());
  const activity: ActivityEntry[] = [];
  const loader = new FakeKeyLoader();
  await workers(prefix, { crypto: pool, keyLoader: loader, activity: { record: (e) => activity.push(e) } });
  const rpc = await client(names);
  const user = 'key-1';
  const shard = shardOf(pubkeyOf(user), 4);
  const base = (call: RpcItem['call']): RpcItem => ({ ...signItem(user), id: `rt-${Math.random()}`, call });

  const [signed, ping, encrypted] = await Promise.all([
    rpc.call(shard, signItem(user, 'round trip')),
    rpc.call(shard, base({ method: 'ping' })),
    rpc.call(shard, base({ method: 'nip44_encrypt', peer: pubkeyOf('key-2'), plaintext: 'secret note' })),
  ]);
  assert.ok(signed.ok, JSON.stringify(signed));
  const event = signed.result as Event;
  assert.equal(event.pubkey, pubkeyOf(user));
  assert.equal(event.content, 'round trip');
  assert.ok(verifyEvent(event), 'a valid Schnorr signature by the user key');
  assert.deepEqual(ping, { id: ping.id, ok: true, result: 'pong' });
  assert.ok(encrypted.ok && typeof encrypted.result === 'string');

  const decrypted = await rpc.call(
    shard,
    base({ method: 'nip44_decrypt', peer: pubkeyOf('key-2'), ciphertext: encrypted.result as string }),
  );
  assert.deepEqual(decrypted.ok && decrypted.result, 'secret note');
  assert.equal(loader.loads, 1, 'the key was decrypted once and then served warm');
  assert.deepEqual(activity.map((a) => a.method).sort(), ['nip44_decrypt', 'nip44_encrypt', 'ping', 'sign_event']);
  assert.equal(activity.find((a) => a.method === 'sign_event')?.eventId, event.id);

  const redis = createRedis(REDIS_TARGET);
  closers.push(() => redis.quit());
  const queue = new ShardQueue(redis, names, { limit: 4096 });
  await waitFor('the items to be released', async () => (await queue.depth(shard)) === 0);
});

test('calls of one turn go as one job; with no worker they answer 504 at the timeout', async () => {
  const { names } = farmPrefix();
  const rpc = await client(names, { timeoutMs: 400 });
  const timeoutsBefore = await metric('keyfarm_rpc_timeouts_total');
  const started = Date.now();
  const calls = Array.from({ length: 20 }, () => rpc.call(2, signItem()));
  await nextTurn();
  await nextTurn();
  await waitFor('the job', async () => (await queuedJobs(names, 2)).length === 1);
  const [job] = await queuedJobs(names, 2);
  assert.equal(job!.items, 20);
  assert.equal((JSON.parse(job!.data) as RpcJobData).items.length, 20, 'one job carries the 20 calls');

  const results = await Promise.all(calls);
  const took = Date.now() - started;
  assert.deepEqual(
    new Set(results.map((r) => (r.ok ? 'ok' : `${r.status} ${r.error}`))),
    new Set(['504 no answer in time']),
  );
  assert.ok(took >= 400 && took < 2000, `answered after ${took} ms`);
  assert.equal(await metric('keyfarm_rpc_timeouts_total'), timeoutsBefore + 20);
});

async function fillPastLimit(limit: number) {
  const { prefix, names } = farmPrefix();
  const rpc = await client(names, { queueLimit: limit, timeoutMs: 30_000 });
  const items = createRedis(REDIS_TARGET);
  closers.push(() => items.quit());
  const depth = async () => Number((await items.hget(names.meter(1), 'count')) ?? 0);
  const rejectedBefore = await metric('keyfarm_backpressure_rejected_total', { door: 'http' });

  // Turns of `batch` calls, each turn one job, until the shard is full: no worker is running.
  const batch = Math.min(256, Math.max(2, Math.floor(limit / 3)));
  const accepted: Promise<ItemResult>[] = [];
  let admittedItems = 0;
  while (admittedItems + batch <= limit) {
    for (let i = 0; i < batch; i++) accepted.push(rpc.call(1, signItem()));
    admittedItems += batch;
    await waitFor('admission', async () => (await depth()) === admittedItems);
  }
  assert.ok((await depth()) <= limit);

  // The next batch passes the limit: its first calls take what room is left (the shard then holds exactly
  // the limit), and the rest are refused at once.
  const room = limit - admittedItems;
  const t0 = Date.now();
  const overflow = Array.from({ length: batch }, () => rpc.call(1, signItem()));
  accepted.push(...overflow.slice(0, room));
  const refused = await Promise.all(overflow.slice(room));
  // "At once": one admission round trip, not a wait for a worker or the 30 s timeout; the bound is loose
  // because a loaded 2-core machine can take half a second to turn 256 calls around.
  assert.ok(Date.now() - t0 < 3000, `503 came at once (${Date.now() - t0} ms)`);
  assert.equal(refused.length, batch - room);
  assert.deepEqual(
    new Set(refused.map((r) => (r.ok ? 'ok' : `${r.status} ${r.error}`))),
    new Set(['503 shard overloaded']),
  );
  assert.equal(await metric('keyfarm_backpressure_rejected_total', { door: 'http' }), rejectedBefore + batch - room);
  await waitFor('the shard to be full', async () => (await depth()) === limit);
  const one = await rpc.call(1, signItem());
  assert.equal(statusOf(one), 503);
  assert.equal(await depth(), limit, 'the count is exactly the limit');
  const waiting = await queuedJobs(names, 1);
  assert.equal(
    waiting.reduce((n, j) => n + (JSON.parse(j.data) as RpcJobData).items.length, 0),
    limit,
    'the queue holds exactly the limit',
  );

  // A worker drains the shard: every admitted call is answered and the count returns to zero.
  await workers(prefix, {}, { QUEUE_LIMIT: limit });
  const results = await Promise.all(accepted);
  assert.equal(results.length, limit);
  assert.ok(
    results.every((r) => r.ok),
    'every admitted call was answered',
  );
  await waitFor('the count to drain', async () => (await depth()) === 0);
}

test('a full shard refuses with 503 at once; the item count never passes a small limit', () => fillPastLimit(10));

test('the 4096-item limit holds and every admitted item is answered', () => fillPastLimit(4096));

test('a lost reply is recovered from the stored job result before the timeout answers', async () => {
  const { prefix, names } = farmPrefix();
  await workers(prefix);
  const rpc = await client(names, { timeoutMs: 600 });
  // Every pub/sub reply to this client is lost: only the fallback read can answer.
  let dropped = 0;
  (rpc as unknown as { ingress: { onReply(message: string): void } }).ingress.onReply = () => void dropped++;
  const started = Date.now();
  const results = await Promise.all([rpc.call(0, signItem('key-3', 'a')), rpc.call(0, signItem('key-3', 'b'))]);
  assert.ok(dropped >= 1, 'the pub/sub reply was dropped');
  assert.ok(Date.now() - started >= 600, 'answered at the timeout, by the fallback read');
  assert.deepEqual(
    results.map((r) => r.ok && (r.result as Event).content),
    ['a', 'b'],
  );
});
