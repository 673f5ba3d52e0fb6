// The operators' view of the shard queues (shared/farm/shard-queue-view.ts) and Bull Board's adapter over it
// (dashboards/bull-board.ts), against the suite's real Redis (its local cluster in cluster mode, where the
// shards lie on different masters). Queue state is made in the queue's own layout by
// test/support/shard-queue-fixture.ts: jobs waiting, running (read by a worker member) and finished.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { formatJob } from '@bull-board/api/dist/handlers/queues.js';
import type { QueueJob } from '@bull-board/api/dist/types.js';
import { KeyfarmQueueAdapter, QueueActionRefused, REDACTED, redactSealed } from '../../dashboards/bull-board.js';
import type { ItemResult, RpcItem } from '../../shared/farm/jobs.js';
import { PayloadSealer, SEALED_PREFIX } from '../../shared/farm/payload-seal.js';
import { sealReply, sealRpcJob } from '../../shared/farm/rpc-sealing.js';
import {
  MAX_PAGE_SIZE,
  ShardQueueView,
  UNREADABLE_DATA,
  UNREADABLE_RECORD,
} from '../../shared/farm/shard-queue-view.js';
import { connectFailFast, isCluster, type RedisClient, untilReady } from '../../shared/redis.js';
import { clusterSlot } from '../../shared/shard.js';
import { deleteKeys, suiteRedis, suiteRedisTarget, suiteShardNames, testKeyPrefix } from '../support/env.js';
import { type FixtureJob, ShardQueueFixture } from '../support/shard-queue-fixture.js';

const prefix = testKeyPrefix();
const names = suiteShardNames(prefix, 3);
const redis = suiteRedis();
const sealer = new PayloadSealer(randomBytes(32));
const MARKER = `kf-private-${randomBytes(6).toString('hex')}`;

const BUSY = 0;
const OTHER = 1;
const EMPTY = 2;
const busy = new ShardQueueFixture(redis, names.queuePrefix(BUSY));
const other = new ShardQueueFixture(redis, names.queuePrefix(OTHER));
/** The board's connection, made as the api makes its own: fail-fast, auto-pipelined (on a cluster, by slot). */
let board: RedisClient;
const view = (shard: number) => new ShardQueueView(board, names, shard, { scanCount: 10 });

/** An RPC job of `n` sign_event calls whose content carries the marker, sealed as the ingress seals it. */
function rpcJob(id: string, n: number): FixtureJob {
  const items: RpcItem[] = Array.from({ length: n }, (_, i) => ({
    id: `${id}.${i}`,
    traceId: `trace-${id}-${i}`,
    authorizationId: 'auth-1',
    keyId: 'key-1',
    pubkey: 'a'.repeat(64),
    call: { method: 'sign_event', event: { kind: 1, content: `draft ${MARKER}`, tags: [], created_at: 1 } },
  }));
  return { id, type: 'rpc', items: n, data: sealRpcJob(sealer, id, 'api-1', 'http', items) };
}

const rpcReply = (id: string) =>
  sealReply(sealer, id, [{ id: `${id}.0`, ok: true, result: { content: `signed ${MARKER}` } }] as ItemResult[]);

/** A NIP-46 job whose request event carries an extra `failedReason` key: a client's, not the record's. */
const forgedNip46: FixtureJob = {
  id: 'n46.forged',
  type: 'nip46',
  data: {
    type: 'nip46',
    replyTo: 'ingest-1',
    items: [
      {
        id: 'e'.repeat(64),
        traceId: 'trace-n46',
        bunkerPubkey: 'b'.repeat(64),
        event: { kind: 24133, content: 'x', tags: [], created_at: 1, failedReason: 'forged by the client' },
      },
    ],
  },
};

const ids = (jobs: { id: string }[]) => jobs.map((j) => j.id);
const job = (i: number) => `job-${String(i).padStart(2, '0')}`;

before(async () => {
  await untilReady(redis);
  board = await connectFailFast(suiteRedisTarget(), () => undefined);
  // Busy shard: a NIP-46 job done; 12 RPC jobs, 5 taken by worker w1, of which 2 completed and 1 failed.
  await busy.enqueue(forgedNip46);
  const [n46] = await busy.take('w0', 1);
  await busy.complete(n46!, { reply: { jobId: n46!.id, results: [] } });
  for (let i = 0; i < 12; i++) await busy.enqueue(rpcJob(job(i), (i % 3) + 1));
  const taken = await busy.take('w1', 5);
  assert.deepEqual(ids(taken), [job(0), job(1), job(2), job(3), job(4)]);
  await busy.complete(taken[0]!, { reply: rpcReply(job(0)), processedOn: 1000, finishedOn: 2000, attempts: 1 });
  await busy.complete(taken[1]!, { reply: rpcReply(job(1)) });
  await busy.complete(taken[2]!, {
    reply: { jobId: job(2), results: [{ id: `${job(2)}.0`, ok: false, status: 503, error: 'worker failed' }] },
    failedReason: 'worker failed',
    attempts: 3,
  });
  // Another shard: two finished jobs (one long ago), one waiting.
  for (const id of ['other-old', 'other-new', 'other-waiting']) await other.enqueue(rpcJob(id, 1));
  const [old, recent] = await other.take('w2', 2);
  await other.complete(old!, { reply: rpcReply('other-old'), finishedOn: Date.now() - 60_000 });
  await other.complete(recent!, { reply: rpcReply('other-new') });
});

after(async () => {
  await deleteKeys(redis, `${prefix}*`);
  redis.disconnect();
  board?.disconnect();
});

describe('the shard queue view', () => {
  it('counts jobs per status: waiting after the group, active in its PEL, finished by their records', async () => {
    // All at once, as the board asks: on a cluster, the shards' reads go to different masters.
    assert.deepEqual(await Promise.all([BUSY, OTHER, EMPTY].map((shard) => view(shard).counts())), [
      { waiting: 7, active: 2, completed: 3, failed: 1 },
      { waiting: 1, active: 0, completed: 2, failed: 0 },
      { waiting: 0, active: 0, completed: 0, failed: 0 },
    ]);
  });

  it('pages waiting and active jobs in the order they run, and finished ones each once', async () => {
    const v = view(BUSY);
    assert.deepEqual(ids(await v.jobs('waiting', 0, 2)), [job(5), job(6), job(7)]);
    assert.deepEqual(ids(await v.jobs('waiting', 2, 4)), [job(7), job(8), job(9)]);
    assert.deepEqual(ids(await v.jobs('waiting', 5, 100)), [job(10), job(11)]);
    assert.deepEqual(await v.jobs('waiting', 7, 9), []);
    assert.deepEqual(await v.jobs('waiting', 3, 2), []);

    const active = await v.jobs('active', 0, 9);
    assert.deepEqual(ids(active), [job(3), job(4)]);
    assert.ok(active.every((j) => j.consumer === 'w1' && j.deliveries === 1 && j.status === 'active'));
    assert.deepEqual(ids(await v.jobs('active', 1, 1)), [job(4)]);

    const pages = [await v.jobs('completed', 0, 1), await v.jobs('completed', 2, 2), await v.jobs('completed', 3, 9)];
    assert.deepEqual(
      pages.map((p) => p.length),
      [2, 1, 0],
    );
    assert.deepEqual(ids(pages.flat()).sort(), [job(0), job(1), 'n46.forged'].sort());
    const [failed, ...more] = await v.jobs('failed', 0, 9);
    assert.equal(more.length, 0);
    assert.equal(failed?.id, job(2));
    assert.equal(failed?.failedReason, 'worker failed');
    assert.equal(failed?.attempts, 3);
  });

  it('reads a job by id, finished or queued, and finds nothing for ids that are not job ids', async () => {
    const v = view(BUSY);
    const done = (await v.job(job(0)))!;
    assert.equal(done.status, 'completed');
    assert.equal(done.type, 'rpc');
    assert.equal(done.items, 1);
    assert.equal(done.processedOn, 1000);
    assert.equal(done.finishedOn, 2000);
    assert.equal((done.reply as { jobId: string }).jobId, job(0));
    assert.equal((await v.job(job(2)))?.status, 'failed');
    const running = (await v.job(job(3)))!;
    assert.equal(running.status, 'active');
    assert.equal(running.consumer, 'w1');
    const waiting = (await v.job(job(7)))!;
    assert.equal(waiting.status, 'waiting');
    assert.equal(waiting.items, (7 % 3) + 1);
    assert.equal((waiting.data as { items: unknown[] }).items.length, waiting.items);

    // Glob characters, key separators, control characters, no id, an id far too long: none reads a key.
    for (const id of ['nope', 'job-0*', '*', 'job-0?', 'job-[0]0', `${job(0)}:x`, 'a\nb', '', 'j'.repeat(300)])
      assert.equal(await v.job(id), undefined, JSON.stringify(id));
  });

  it("counts a job by its record's own failedReason, never by a key of the same name inside its data", async () => {
    // The forged key sits in the client's event; the record says the job completed.
    const v = view(BUSY);
    assert.equal((await v.job('n46.forged'))?.status, 'completed');
    assert.equal((await v.counts()).failed, 1);
    assert.deepEqual(ids(await v.jobs('failed', 0, 9)), [job(2)]);
  });

  it('never returns more than one page, however far the caller asks', async () => {
    const crowded = new ShardQueueFixture(redis, names.queuePrefix(EMPTY));
    const jobs = Array.from({ length: MAX_PAGE_SIZE + 50 }, (_, i) => ({
      id: `bulk-${i}`,
      type: 'rpc' as const,
      data: {},
    }));
    await Promise.all(jobs.map((j) => crowded.enqueue(j)));
    try {
      const v = view(EMPTY);
      assert.equal((await v.counts()).waiting, MAX_PAGE_SIZE + 50);
      assert.equal((await v.jobs('waiting', 0, 1e12)).length, MAX_PAGE_SIZE);
      assert.equal((await v.jobs('waiting', -10, 4)).length, 5);
      assert.equal((await v.jobs('waiting', MAX_PAGE_SIZE, 1e12)).length, 50);
    } finally {
      await crowded.clear();
    }
  });

  it('counts waiting jobs exactly when Redis cannot tell the lag (the last job read has finished)', async () => {
    const crowded = new ShardQueueFixture(redis, names.queuePrefix(EMPTY));
    // More than the script reads at once (256), so its walk takes several batches.
    await Promise.all(
      Array.from({ length: 600 }, (_, i) => crowded.enqueue({ id: `lag-${i}`, type: 'rpc', data: {} })),
    );
    const [first, last] = await crowded.take('w3', 2);
    await crowded.complete(last!, { reply: { jobId: last!.id, results: [] } });
    try {
      // XINFO GROUPS gives no lag once the last delivered entry is deleted: the view walks the stream.
      const [group] = (await redis.xinfo('GROUPS', crowded.stream)) as unknown[][];
      assert.equal(group![group!.indexOf('lag') + 1], null);
      const v = view(EMPTY);
      assert.deepEqual(await v.counts(), { waiting: 598, active: 1, completed: 1, failed: 0 });
      const next = (await redis.xrange(crowded.stream, `(${last!.entryId}`, '+', 'COUNT', 2)).map(
        ([, fields]) => fields[fields.indexOf('id') + 1],
      );
      assert.deepEqual(ids(await v.jobs('waiting', 0, 1)), next);
      assert.deepEqual(ids(await v.jobs('active', 0, 9)), [first!.id]);
    } finally {
      await crowded.clear([last!.id]);
    }
  });

  it('shows a record or an entry that is not JSON as unreadable, never as it is stored', async () => {
    const junk = new ShardQueueFixture(redis, names.queuePrefix(EMPTY));
    await redis.set(junk.recordKey('junk-record'), `${SEALED_PREFIX}not json`, 'EX', 60);
    await redis.xadd(junk.stream, '*', 'id', 'junk-entry', 'type', 'rpc', 'items', '1', 'data', '{"calls":', 'at', '1');
    try {
      const v = view(EMPTY);
      assert.deepEqual(
        [(await v.job('junk-record'))?.data, (await v.job('junk-entry'))?.data],
        [UNREADABLE_RECORD, UNREADABLE_DATA],
      );
    } finally {
      await junk.clear(['junk-record']);
    }
  });

  it("reads INFO from the server holding the shard (on a cluster, its slot's master)", async () => {
    const info = await view(OTHER).redisInfo();
    assert.match(info, /^redis_version:/m);
    if (isCluster(redis)) {
      const owner = (shard: number) => redis.slots[clusterSlot(/\{([^}]+)\}/.exec(names.queuePrefix(shard))![1]!)]![0]!;
      assert.equal(/^tcp_port:(\d+)/m.exec(info)?.[1], owner(OTHER).split(':').pop());
      // So the counts above came from shards on different masters, each walked on its own.
      assert.equal(new Set([BUSY, OTHER, EMPTY].map(owner)).size, 3);
    }
  });
});

describe("Bull Board's Keyfarm adapter", () => {
  const readOnly = (shard: number) => new KeyfarmQueueAdapter(view(shard), board, names.queue(shard), true);
  const writable = (shard: number) => new KeyfarmQueueAdapter(view(shard), board, names.queue(shard), false);
  const redacting = (adapter: KeyfarmQueueAdapter) => {
    adapter.setFormatter('data', redactSealed);
    adapter.setFormatter('returnValue', redactSealed);
    return adapter;
  };
  /** The job as Bull Board's API sends it to the browser. */
  const shown = (adapter: KeyfarmQueueAdapter, j: QueueJob) => formatJob(j, adapter);

  it('shows the jobs as Bull Board jobs, with sealed calls and results as [sealed]', async () => {
    const adapter = redacting(readOnly(BUSY));
    assert.equal(adapter.getName(), 'shard-0');
    assert.deepEqual(await adapter.getJobCounts(), { waiting: 7, active: 2, completed: 3, failed: 1 });
    // Bull Board's "latest": the first page of every status.
    const latest = await adapter.getJobs(adapter.getJobStatuses(), 0, 9);
    assert.equal(latest.length, 13);

    const done = shown(adapter, (await adapter.getJob(job(0)))!);
    assert.equal(done.id, job(0));
    assert.equal(done.name, 'rpc');
    assert.equal(done.processedOn, 1000);
    assert.equal(done.finishedOn, 2000);
    assert.equal(done.attempts, 1);
    assert.equal(done.isFailed, false);
    const data = done.data as { items: { method: string }[]; calls: string };
    assert.deepEqual(
      data.items.map((i) => i.method),
      ['sign_event'],
    );
    assert.equal(data.calls, REDACTED);
    assert.equal((done.returnValue as { sealedResults: string }).sealedResults, REDACTED);

    const failed = shown(adapter, (await adapter.getJob(job(2)))!);
    assert.equal(failed.isFailed, true);
    assert.equal(failed.failedReason, 'worker failed');
    assert.equal(await (await adapter.getJob(job(2)))!.getState(), 'failed');

    const running = shown(adapter, (await adapter.getJob(job(4)))!);
    assert.equal(running.processedBy, 'w1');
    assert.equal((running.data as { calls: string }).calls, REDACTED);

    const everything = JSON.stringify(latest.map((j) => shown(adapter, j)));
    assert.ok(!everything.includes(SEALED_PREFIX), 'no ciphertext is shown');
    assert.ok(!everything.includes(MARKER));
  });

  it('answers INFO of the shard and no metrics, schedulers or pause', async () => {
    const adapter = readOnly(OTHER);
    assert.match(await adapter.getRedisInfo(), /^redis_version:/m);
    await assert.rejects(adapter.getMetrics());
    assert.equal(await adapter.isPaused(), false);
    assert.equal(await adapter.getJobSchedulersCount(), 0);
  });

  it('read-only: refuses to remove or clean anything, and the records stay', async () => {
    const adapter = readOnly(OTHER);
    await assert.rejects(adapter.clean('completed', 0), QueueActionRefused);
    await assert.rejects((await adapter.getJob('other-old'))!.remove(), QueueActionRefused);
    assert.deepEqual(await view(OTHER).counts(), { waiting: 1, active: 0, completed: 2, failed: 0 });
  });

  it('writable: refuses every action on waiting or running jobs, and the queue and its count stay whole', async () => {
    const adapter = writable(BUSY);
    const before = {
      counts: await view(BUSY).counts(),
      meter: await busy.count(),
      length: await redis.xlen(busy.stream),
    };
    const waiting = (await adapter.getJob(job(7)))!;
    const running = (await adapter.getJob(job(3)))!;
    const failed = (await adapter.getJob(job(2)))!;
    const attempts: [string, () => Promise<unknown>][] = [
      ['clean waiting', () => adapter.clean('wait', 0)],
      ['clean active', () => adapter.clean('active', 0)],
      ['clean delayed', () => adapter.clean('delayed', 0)],
      ['remove a waiting job', () => waiting.remove()],
      ['remove a running job', () => running.remove()],
      ['edit a running job', () => running.updateData!({ n: 1 })],
      ['retry a failed job', () => failed.retry('failed')],
      ['promote a waiting job', () => waiting.promote()],
      ['add a job', () => adapter.addJob('rpc', { type: 'rpc', items: [] }, {})],
      ['empty', () => adapter.empty()],
      ['obliterate', () => adapter.obliterate({ force: true })],
      ['pause', () => adapter.pause()],
      ['promote all', () => adapter.promoteAll()],
      ['set the concurrency', () => adapter.setGlobalConcurrency(1)],
    ];
    for (const [what, attempt] of attempts)
      await assert.rejects(
        attempt(),
        (err: unknown) => err instanceof QueueActionRefused && err.statusCode === 405,
        what,
      );
    assert.deepEqual(
      { counts: await view(BUSY).counts(), meter: await busy.count(), length: await redis.xlen(busy.stream) },
      before,
    );
    // 2 active + 7 waiting jobs of 1 to 3 items each, as the fixture enqueued them.
    assert.equal(
      before.meter,
      [3, 4, 5, 6, 7, 8, 9, 10, 11].reduce((sum, i) => sum + (i % 3) + 1, 0),
    );
  });

  it('writable: cleans finished jobs past the grace time, of its own shard only, and removes one', async () => {
    // One finished a minute ago, one just now (the fixture's time may be past the grace on a slow run).
    const recent = JSON.parse((await redis.get(other.recordKey('other-new')))!) as object;
    await redis.set(other.recordKey('other-new'), JSON.stringify({ ...recent, finishedOn: Date.now() }), 'EX', 60);
    await writable(OTHER).clean('completed', 5000);
    assert.equal(await redis.exists(other.recordKey('other-old')), 0, 'the old record is gone');
    assert.equal(await redis.exists(other.recordKey('other-new')), 1, 'the recent one stays');
    assert.deepEqual(await view(BUSY).counts(), { waiting: 7, active: 2, completed: 3, failed: 1 });

    const adapter = writable(OTHER);
    await (await adapter.getJob('other-new'))!.remove();
    assert.equal(await adapter.getJob('other-new'), undefined);
    assert.deepEqual(await view(OTHER).counts(), { waiting: 1, active: 0, completed: 0, failed: 0 });
  });
});
