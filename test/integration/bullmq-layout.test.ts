// Guards shared/farm/bullmq-layout.ts, the one place Keyfarm reads BullMQ's private Redis layout: every
// fact it states is checked here against the installed BullMQ, through BullMQ's public API, so a BullMQ
// that lays jobs out differently fails this test instead of silently breaking admission's reconcile.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { Job, Queue, Worker } from 'bullmq';
import { createBullConnection, createRedis } from '../../shared/redis.js';
import { Admission } from '../../shared/farm/admission.js';
import { JOB_CREATED_FIELD, JOB_FINISHED_FIELD, jobKeyPrefix } from '../../shared/farm/bullmq-layout.js';
import { ShardNames } from '../../shared/shard.js';
import { REDIS_TARGET, deleteByPrefix, uniquePrefix, waitFor } from './farm-fixtures.js';

const prefix = uniquePrefix();
const names = new ShardNames(prefix);
const SHARD = 2;
const redis = createRedis(REDIS_TARGET);
const bull = createBullConnection(REDIS_TARGET);
const queue = new Queue(names.queue(SHARD), { connection: redis, prefix: names.queuePrefix(SHARD) });
after(async () => {
  await queue.close();
  await Promise.all([redis.quit(), bull.quit()]);
  await deleteByPrefix(prefix);
});

const field = (jobId: string, name: string) => redis.hget(`${jobKeyPrefix(names, SHARD)}${jobId}`, name);

test('a job hash lives at jobKeyPrefix + id, with the created field from its add and the finished field once it ends', async () => {
  await queue.add('rpc', { n: 1 }, { jobId: 'layout.ok' });
  await queue.add('rpc', { n: 2 }, { jobId: 'layout.fail', attempts: 1 });
  const waiting = (await Job.fromId(queue, 'layout.ok'))!;
  assert.equal(
    await field('layout.ok', JOB_CREATED_FIELD),
    String(waiting.timestamp),
    "the created field is the job's timestamp",
  );
  assert.equal(await field('layout.ok', JOB_FINISHED_FIELD), null, 'a waiting job has no finished field');

  const worker = new Worker(
    names.queue(SHARD),
    async (job) => {
      if (job.id === 'layout.fail') throw new Error('fails for good');
      return 'done';
    },
    { connection: bull, prefix: names.queuePrefix(SHARD), drainDelay: 1 },
  );
  try {
    await waitFor('both jobs to finish', async () => {
      const counts = await queue.getJobCounts('completed', 'failed');
      return counts.completed === 1 && counts.failed === 1;
    });
  } finally {
    await worker.close();
  }
  for (const id of ['layout.ok', 'layout.fail']) {
    const finished = (await Job.fromId(queue, id))!;
    assert.ok(finished.finishedOn, `${id} finished`);
    assert.equal(
      await field(id, JOB_FINISHED_FIELD),
      String(finished.finishedOn),
      `${id}: the finished field is its finishedOn`,
    );
    assert.equal(await field(id, JOB_CREATED_FIELD), String(finished.timestamp));
  }
});

test("reconcile, reading that layout, keeps a waiting job's items and drops a finished job's", async () => {
  const admission = new Admission(redis, names, { limit: 100 });
  const shard = 3;
  const q = new Queue(names.queue(shard), { connection: redis, prefix: names.queuePrefix(shard) });
  try {
    assert.equal(await admission.admit(shard, 'r.done', 5), 5);
    assert.equal(await admission.admit(shard, 'r.waiting', 2), 2);
    await q.add('rpc', {}, { jobId: 'r.done' });
    // A worker completes r.done and (as if it died right after) never releases its items.
    const worker = new Worker(
      names.queue(shard),
      async (job) => (job.id === 'r.done' ? 'done' : new Promise(() => undefined)),
      {
        connection: bull,
        prefix: names.queuePrefix(shard),
        drainDelay: 1,
      },
    );
    try {
      await waitFor('r.done to complete', async () => Boolean((await Job.fromId(q, 'r.done'))?.finishedOn));
    } finally {
      await worker.close(true);
    }
    await q.add('rpc', {}, { jobId: 'r.waiting' });
    assert.equal(await admission.depth(shard), 7);
    assert.equal(await admission.reconcile(shard), 2, 'only the waiting job still holds items');
  } finally {
    await q.close();
  }
});
