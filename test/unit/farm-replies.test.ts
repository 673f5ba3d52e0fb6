// What a message on a reply channel carries (shared/farm/replies.ts): a job's finished record, whose
// `reply` is the answer; a bare reply (from a worker of an earlier version) reads the same.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { replyOf } from '../../shared/farm/replies.js';
import { finishedRecord } from '../../shared/farm/shard-queue.js';

const job = { entryId: '1-0', id: 'j1', type: 'rpc', items: 1, data: '{"type":"rpc","items":[]}', addedAt: 1 };
const reply = { jobId: 'j1', sealedResults: 'kfsealed1:cmVzdWx0cw' };

test("a finished record's reply is the answer; a bare reply reads as itself", () => {
  const record = JSON.parse(finishedRecord(job, { processedOn: 2, finishedOn: 3, attempts: 1 }, reply)) as unknown;
  assert.deepEqual(replyOf(record), reply);
  assert.deepEqual(replyOf(reply), reply);
});

test('a message that is neither carries no reply', () => {
  assert.equal(replyOf({ id: 'j1' }), undefined);
  assert.equal(replyOf(null), null);
  assert.equal(replyOf('text'), 'text');
});
