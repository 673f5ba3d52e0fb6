// Keyfarm's shard queue (shared/farm/shard-queue.ts, .lua) against a real Redis: admission fused into the
// add, completion that gives items back once, the count rebuilt from the stream, NIP-46 ids that never
// run twice, the fallback read the ingress does when a reply does not come, and the consumer
// (workers/shard-worker.ts): claims of a dead worker's jobs, lock extension, retries.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { createRedis, redisReplyCode } from '../../shared/redis.js';
import type { JobData, ReplyMessage, SealedReplyMessage } from '../../shared/farm/jobs.js';
import {
  ADMISSION_FLOOR,
  type FinishedJob,
  finishedRecord,
  type QueuedJob,
  ShardQueue,
} from '../../shared/farm/shard-queue.js';
import { ShardNames } from '../../shared/shard.js';
import { ShardWorker } from '../../workers/shard-worker.js';
import type { ActivitySink } from '../../workers/activity.js';
import { ActivityStream, activityStreamKey } from '../../workers/activity-stream.js';
import { subscribeReplies } from '../../shared/farm/replies.js';
import { decodeJobData } from '../../shared/farm/job-data.js';
import { REDIS_TARGET, deleteByPrefix, queuedJobs, quietLogger, uniquePrefix, waitFor } from './farm-fixtures.js';

const prefixes: string[] = [];
const closers: (() => Promise<unknown>)[] = [];
after(async () => {
  await Promise.all(closers.map((c) => c()));
  await Promise.all(prefixes.map(deleteByPrefix));
});

function setUp(limit: number, maxWaitMs = 0) {
  const prefix = uniquePrefix();
  prefixes.push(prefix);
  const names = new ShardNames(prefix);
  const redis = createRedis(REDIS_TARGET);
  closers.push(() => redis.quit());
  return { names, redis, queue: new ShardQueue(redis, names, { limit, maxWaitMs }) };
}

const data = (n: number): JobData => ({
  type: 'nip46',
  replyTo: 'test',
  items: Array.from({ length: n }, (_, i) => ({
    id: `e${i}`,
    traceId: `t${i}`,
    bunkerPubkey: 'b',
    event: { id: `e${i}`, pubkey: 'p', created_at: 1, kind: 24133, tags: [], content: 'c', sig: 's' },
  })),
});

async function add(queue: ShardQueue, shard: number, jobId: string, items: number, allOrNothing = false) {
  return queue.enqueue(shard, { jobId, items, data: data(items), allOrNothing });
}

/** Completes the job the stream holds under `jobId`, as a worker does. */
async function complete(queue: ShardQueue, names: ShardNames, shard: number, jobId: string) {
  const job = (await queuedJobs(names, shard)).find((j) => j.id === jobId);
  assert.ok(job, `job ${jobId} is queued`);
  return completeJob(queue, shard, job);
}

async function completeJob(
  queue: ShardQueue,
  shard: number,
  job: QueuedJob,
  reply: ReplyMessage | SealedReplyMessage = { jobId: job.id, results: [] },
) {
  const now = Date.now();
  const record = finishedRecord(job, { processedOn: now, finishedOn: now, attempts: 1 }, reply);
  return (await queue.complete(shard, job, { record, keepSeconds: 60 })).completed;
}

test("a finished RPC job's record keeps its items' ids, methods and trace ids and the reply, not the sealed calls", async () => {
  const { names, queue, redis } = setUp(100);
  const rpc: JobData = {
    type: 'rpc',
    replyTo: 'api-1',
    door: 'http',
    items: [0, 1].map((i) => ({
      id: `r${i}`,
      traceId: `t${i}`,
      authorizationId: `auth-${i}`,
      keyId: `key-${i}`,
      pubkey: 'a'.repeat(64),
      method: 'sign_event' as const,
    })),
    calls: 'kfsealed1:c2VhbGVkIGNhbGxz',
  };
  await queue.enqueue(3, { jobId: 'rpc.1', items: 2, data: rpc });
  const [job] = await queuedJobs(names, 3);
  assert.deepEqual(decodeJobData(job!.data), rpc, 'the stream entry carries the whole data, calls included');
  assert.deepEqual(
    (JSON.parse(job!.data) as { items: unknown[] }).items[1],
    ['r1', 't1', 'auth-1', 'key-1', 'a'.repeat(64), 'sign_event'],
    'an item is written positionally, without its names',
  );
  const reply: SealedReplyMessage = { jobId: 'rpc.1', sealedResults: 'kfsealed1:cmVzdWx0cw' };
  assert.equal(await completeJob(queue, 3, job!, reply), true);
  const record = JSON.parse((await redis.get(names.job(3, 'rpc.1')))!) as FinishedJob;
  assert.deepEqual(record.data, {
    type: 'rpc',
    replyTo: 'api-1',
    door: 'http',
    items: [
      { id: 'r0', method: 'sign_event', traceId: 't0' },
      { id: 'r1', method: 'sign_event', traceId: 't1' },
    ],
  });
  assert.deepEqual(record.reply, reply, 'the reply whole, for the fallback read');
  const state = await queue.lookup(3, 'rpc.1', job!.entryId);
  assert.deepEqual(state.kind === 'finished' && state.job.reply, reply);
});

test('enqueue admits the items that fit and adds the job with exactly those; a refusal adds nothing', async () => {
  const { names, queue, redis } = setUp(10);
  const first = await add(queue, 0, 'a.1', 7);
  assert.equal(first.kind, 'added');
  assert.equal(first.kind === 'added' && first.admitted, 7);
  const second = await add(queue, 0, 'a.2', 5);
  assert.deepEqual(
    second.kind === 'added' && [second.admitted, second.retryAfterMs > 0],
    [3, true],
    'three of five fit',
  );
  assert.equal(await queue.depth(0), 10);
  const refused = await add(queue, 0, 'a.3', 1);
  assert.deepEqual(
    refused.kind === 'added' && [refused.admitted, refused.entryId],
    [0, ''],
    'a full shard admits none',
  );
  assert.deepEqual(
    (await queuedJobs(names, 0)).map((j) => [j.id, j.items]),
    [
      ['a.1', 7],
      ['a.2', 3],
    ],
    'the stream holds the admitted jobs, each with the items it was admitted; the refused one is not there',
  );
  assert.equal(await queue.depth(0), 10, 'a refusal changes nothing');

  assert.equal(await complete(queue, names, 0, 'a.1'), true);
  assert.equal(await queue.depth(0), 3, 'a job gives back what it was admitted');
  // All or nothing: only 7 of 9 fit, so nothing is added and the caller is told how many would.
  const cut = await add(queue, 0, 'a.4', 9, true);
  assert.deepEqual(cut.kind === 'cut' && [cut.admitted, cut.retryAfterMs > 0], [7, true]);
  assert.equal(await redis.xlen(names.jobs(0)), 1, 'nothing was added');
  assert.equal(await queue.depth(0), 3);
  const again = await add(queue, 0, 'a.4', 7, true);
  assert.equal(again.kind === 'added' && again.admitted, 7, 'the cut batch fits');
  assert.equal(await queue.depth(0), 10);
});

test('concurrent enqueues from two connections never pass the limit, and the count is the stream', async () => {
  const { names, queue } = setUp(50);
  const other = setUp(50);
  const q2 = new ShardQueue(other.redis, names, { limit: 50 });
  const results = await Promise.all(
    Array.from({ length: 40 }, (_, i) => add(i % 2 ? queue : q2, 1, `c.${i}`, 1 + (i % 4))),
  );
  const admitted = results.reduce((n, r) => n + (r.kind === 'added' ? r.admitted : 0), 0);
  const jobs = await queuedJobs(names, 1);
  assert.equal(admitted, 50, 'the shard filled up exactly');
  assert.equal(
    jobs.reduce((n, j) => n + j.items, 0),
    50,
  );
  assert.equal(await queue.depth(1), 50);
});

test('complete gives the items back once and keeps the finished record; a second complete changes nothing', async () => {
  const { names, queue, redis } = setUp(100);
  await add(queue, 2, 'done.1', 4);
  await add(queue, 2, 'live.1', 3);
  const job = (await queuedJobs(names, 2))[0]!;
  assert.equal(await completeJob(queue, 2, job), true);
  assert.equal(await queue.depth(2), 3);
  assert.equal(await completeJob(queue, 2, job), false, 'already completed');
  assert.equal(await queue.depth(2), 3, 'a second complete gives nothing back');
  const record = JSON.parse((await redis.get(names.job(2, 'done.1')))!) as FinishedJob;
  assert.deepEqual(Object.keys(record), [
    'id',
    'type',
    'items',
    'data',
    'addedAt',
    'processedOn',
    'finishedOn',
    'attempts',
    'reply',
  ]);
  assert.equal(record.id, 'done.1');
  assert.deepEqual(record.data, data(4), 'the data as added');
  assert.deepEqual(record.reply, { jobId: 'done.1', results: [] });
  const ttl = await redis.ttl(names.job(2, 'done.1'));
  assert.ok(ttl > 50 && ttl <= 60, `kept ${ttl} s`);
  assert.deepEqual(
    (await redis.xpending(names.jobs(2), 'workers').catch(() => [0]))[0],
    0,
    'nothing left pending for the completed job',
  );
});

test('reconcile rebuilds the count exactly from the stream', async () => {
  const { names, queue, redis } = setUp(100);
  await add(queue, 3, 'r.1', 5);
  await add(queue, 3, 'r.2', 4);
  // A count gone wrong (a lost write, a hand edit): too high, then too low.
  await redis.hset(names.meter(3), 'count', 77);
  assert.equal(await queue.reconcile(3), 9);
  assert.equal(await queue.depth(3), 9);
  await redis.hset(names.meter(3), 'count', 1);
  assert.equal(await queue.reconcile(3), 9);
  await complete(queue, names, 3, 'r.1');
  assert.equal(await queue.reconcile(3), 4);
  await complete(queue, names, 3, 'r.2');
  assert.equal(await queue.reconcile(3), 0);
});

test('admission by deadline: a shard takes what it drains within the max wait, as every replica sees it', async () => {
  const { names, queue } = setUp(4096, 1000);
  const other = setUp(4096);
  const q2 = new ShardQueue(other.redis, names, { limit: 4096, maxWaitMs: 1000 });
  const first = await add(queue, 0, 'd.1', 500);
  assert.equal(first.kind === 'added' && first.admitted, ADMISSION_FLOOR, 'not measured yet: the floor');
  // The shard holds those items for about 400 ms, then they are released: about 160 items a second.
  await sleep(400);
  await complete(queue, names, 0, 'd.1');
  const measured = (await q2.drainRate(0)).perSecond;
  assert.ok(measured !== undefined && measured > 30 && measured < 180, `rate ${measured}`);
  // What drains within 1 s at that rate, and no more.
  const second = await add(queue, 0, 'd.2', 1000);
  assert.ok(second.kind === 'added' && second.admitted > 30 && second.admitted < 180, JSON.stringify(second));
  assert.ok(second.retryAfterMs > 0, 'the rest are told when to come back');
  // The other replica finds the shard full by the same figure.
  const third = await add(q2, 0, 'd.3', 10);
  assert.ok(third.kind === 'added' && third.admitted === 0 && third.retryAfterMs > 0, JSON.stringify(third));
  assert.equal(await q2.depth(0), second.admitted, 'the count holds only what was admitted');
  // Held with nothing released (a stall): the rate falls.
  await sleep(300);
  const stalled = (await q2.drainRate(0)).perSecond!;
  assert.ok(stalled < measured, `rate ${stalled} < ${measured}`);
  // Without a max wait only the limit counts.
  const unbounded = await add(new ShardQueue(other.redis, names, { limit: 4096 }), 0, 'd.4', 500);
  assert.equal(unbounded.kind === 'added' && unbounded.admitted, 500);
});

test('a NIP-46 job id is added once: a second add is refused while it is queued and after it finished', async () => {
  const { names, queue, redis } = setUp(100);
  const job = { jobId: 'n46.abc', items: 2, data: data(2), dedupe: true };
  const first = await queue.enqueue(0, job);
  assert.equal(first.kind, 'added');
  const again = await queue.enqueue(0, job);
  assert.equal(again.kind, 'duplicate');
  assert.equal(again.kind === 'duplicate' && again.entryId, first.kind === 'added' ? first.entryId : '?');
  assert.equal(await queue.depth(0), 2, 'the duplicate holds no items');
  assert.equal(await redis.xlen(names.jobs(0)), 1);
  await complete(queue, names, 0, 'n46.abc');
  // Even without the dedupe mark, the finished record refuses it.
  await redis.del(names.dedupe(0, 'n46.abc'));
  assert.equal((await queue.enqueue(0, job)).kind, 'duplicate');
  assert.equal(await redis.xlen(names.jobs(0)), 0, 'it did not run again');
  // An HTTP job id pays nothing for it: no mark is set.
  await queue.enqueue(0, { jobId: 'http.1', items: 1, data: data(1) });
  assert.equal(await redis.exists(names.dedupe(0, 'http.1')), 0);
});

test('an enqueue that reaches Redis past its deadline adds nothing', async () => {
  const { names, queue, redis } = setUp(100);
  const probe = await add(queue, 2, 'p.1', 1);
  const late = await queue.enqueue(2, { jobId: 'late.1', items: 2, data: data(2), deadline: probe.serverNow - 1 });
  assert.equal(late.kind, 'late');
  assert.deepEqual(
    (await queuedJobs(names, 2)).map((j) => j.id),
    ['p.1'],
  );
  assert.equal(await queue.depth(2), 1, 'it holds no items');
  const inTime = await queue.enqueue(2, {
    jobId: 'late.2',
    items: 2,
    data: data(2),
    deadline: probe.serverNow + 60_000,
  });
  assert.equal(inTime.kind, 'added');
  assert.equal(await redis.xlen(names.jobs(2)), 2);
});

test('lookup: a queued job is pending, a finished one has its reply, an unknown one is gone', async () => {
  const { names, queue } = setUp(100);
  const added = await add(queue, 1, 'l.1', 2);
  assert.ok(added.kind === 'added');
  assert.deepEqual(await queue.lookup(1, 'l.1', added.entryId), { kind: 'pending' });
  await complete(queue, names, 1, 'l.1');
  const done = await queue.lookup(1, 'l.1', added.entryId);
  assert.ok(done.kind === 'finished');
  assert.deepEqual(done.job.reply, { jobId: 'l.1', results: [] });
  assert.deepEqual(await queue.lookup(1, 'l.2', '1-0'), { kind: 'gone' });
  assert.deepEqual(await queue.lookup(1, 'l.3', ''), { kind: 'gone' });
});

/** A ShardWorker on shard `shard` of `names` whose jobs run `run` (an RPC processor's place). */
function consumer(
  names: ShardNames,
  shard: number,
  member: string,
  run: (jobId: string) => Promise<SealedReplyMessage>,
  lockMs = 300,
  activity?: ActivitySink,
) {
  const commands = createRedis(REDIS_TARGET);
  closers.push(() => commands.quit());
  const worker = new ShardWorker({
    shard,
    names,
    consumer: member,
    reader: createRedis(REDIS_TARGET, { enableAutoPipelining: false, maxRetriesPerRequest: null }),
    commands,
    ...(activity ? { activity } : {}),
    queue: new ShardQueue(commands, names, { limit: 100 }),
    processor: (jobId) => run(jobId),
    logger: quietLogger(),
    concurrency: 2,
    lockDurationMs: lockMs,
    stalledIntervalMs: 100,
    maxStalledCount: 3,
    keepSeconds: 60,
    blockMs: 100,
  });
  closers.push(() => worker.close(undefined, { force: true }));
  return worker;
}

const rpcData = (n: number): JobData => ({
  type: 'rpc',
  replyTo: 'nobody',
  items: Array.from({ length: n }, (_, i) => ({
    id: `i${i}`,
    traceId: `t${i}`,
    authorizationId: 'a',
    keyId: 'k',
    pubkey: 'p',
    method: 'ping' as const,
  })),
  calls: 'sealed',
});

test("a job read by a worker that died is claimed and run by the shard's next owner, once", async () => {
  const { names, queue, redis } = setUp(100);
  await queue.ensureGroup(0);
  await queue.enqueue(0, { jobId: 'crash.1', items: 2, data: rpcData(2) });
  // A worker read it and died (kill -9): it sits in the group's pending list under the dead member.
  const read = await redis.xreadgroup('GROUP', 'workers', 'dead-member', 'COUNT', 10, 'STREAMS', names.jobs(0), '>');
  assert.equal((read as unknown[] | null)?.length, 1);
  const ran: string[] = [];
  consumer(names, 0, 'next-owner', async (jobId) => {
    ran.push(jobId);
    return { jobId, sealedResults: 'done' };
  });
  await waitFor('the job to finish', async () => (await redis.exists(names.job(0, 'crash.1'))) === 1);
  assert.deepEqual(ran, ['crash.1'], 'run once, by the next owner, after the lock ran out');
  const record = JSON.parse((await redis.get(names.job(0, 'crash.1')))!) as FinishedJob;
  assert.deepEqual(record.reply, { jobId: 'crash.1', sealedResults: 'done' });
  assert.equal(await queue.depth(0), 0, 'its items went back');
  assert.equal(await redis.xlen(names.jobs(0)), 0);
});

test('a slow job keeps its lock; a job that throws is tried 3 times and then answered 503', async () => {
  const { names, queue, redis } = setUp(100);
  const lockMs = 600;
  const runs = new Map<string, number>();
  consumer(
    names,
    1,
    'owner',
    async (jobId) => {
      runs.set(jobId, (runs.get(jobId) ?? 0) + 1);
      if (jobId === 'slow.1') await sleep(lockMs * 3);
      if (jobId === 'bad.1') throw new Error('processing failed');
      return { jobId, sealedResults: 'ok' };
    },
    lockMs,
  );
  await queue.enqueue(1, { jobId: 'slow.1', items: 1, data: rpcData(1) });
  await queue.enqueue(1, { jobId: 'bad.1', items: 3, data: rpcData(3) });
  // Another member claiming what idles past the lock, as the shard's next owner would.
  const stolen: string[] = [];
  const done = () => redis.exists(names.job(1, 'slow.1'), names.job(1, 'bad.1'));
  while ((await done()) < 2) {
    // The consumer makes the group at its first read, which may come after the first claim.
    const [, claimed] = (await redis
      .xautoclaim(names.jobs(1), 'workers', 'thief', lockMs, '0-0', 'COUNT', 10)
      .catch((err: Error) => {
        if (redisReplyCode(err) === 'NOGROUP') return ['0-0', []];
        throw err;
      })) as [string, [string, string[]][]];
    stolen.push(...claimed.map(([id]) => id));
    await sleep(50);
  }
  assert.deepEqual(stolen, [], 'no job idled past its lock: the slow one had its lock extended');
  assert.equal(runs.get('slow.1'), 1);
  assert.equal(runs.get('bad.1'), 3, 'three tries');
  const bad = JSON.parse((await redis.get(names.job(1, 'bad.1')))!) as FinishedJob;
  assert.equal(bad.failedReason, 'processing failed');
  assert.equal(bad.attempts, 3);
  assert.deepEqual(
    (bad.reply as { results: { status: number; error: string }[] }).results.map((r) => `${r.status} ${r.error}`),
    ['503 worker failed', '503 worker failed', '503 worker failed'],
  );
  assert.equal(await queue.depth(1), 0);
});

test("a job's activity is in its stream and its record kept by the time its reply is heard", async () => {
  const { names, queue, redis } = setUp(100);
  const prefix = names.prefix;
  const activityKey = activityStreamKey(prefix);
  const appender = createRedis(REDIS_TARGET);
  const listener = createRedis(REDIS_TARGET, { enableAutoPipelining: false });
  closers.push(
    () => appender.quit(),
    () => listener.quit(),
  );
  const activity = new ActivityStream(
    appender,
    activityKey,
    { record: () => assert.fail('no fallback while Redis answers') },
    quietLogger(),
  );
  // What the ingress 'api-x' sees when each reply arrives: the job's record and its activity rows.
  const seen: { reply: unknown; record: boolean; activityRows: number }[] = [];
  const checks: Promise<void>[] = [];
  await subscribeReplies(listener, names, 'api-x', 4, (message) => {
    const { reply } = JSON.parse(message) as { reply: { jobId: string } };
    checks.push(
      (async () => {
        const entries = await redis.xrange(activityKey, '-', '+');
        const rows = entries.flatMap(([, fields]) => JSON.parse(fields[1]!) as unknown[]);
        seen.push({ reply, record: (await redis.exists(names.job(2, reply.jobId))) === 1, activityRows: rows.length });
      })(),
    );
  });
  const data = { ...rpcData(3), replyTo: 'api-x' };
  consumer(
    names,
    2,
    'owner',
    async (jobId) => {
      for (let i = 0; i < 3; i++) activity.record({ authorizationId: `a${i}`, method: 'ping', door: 'http' });
      return { jobId, sealedResults: `sealed ${jobId}` };
    },
    300,
    activity,
  );
  await queue.enqueue(2, { jobId: 'act.1', items: 3, data });
  await waitFor('the reply heard', () => checks.length === 1);
  await Promise.all(checks);
  assert.deepEqual(seen, [{ reply: { jobId: 'act.1', sealedResults: 'sealed act.1' }, record: true, activityRows: 3 }]);
  const record = JSON.parse((await redis.get(names.job(2, 'act.1')))!) as FinishedJob;
  assert.deepEqual(record.reply, { jobId: 'act.1', sealedResults: 'sealed act.1' }, 'the record ends with the reply');
  assert.equal(await queue.depth(2), 0);
  await redis.del(activityKey);
});
