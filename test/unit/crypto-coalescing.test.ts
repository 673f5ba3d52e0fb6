// The coalescing crypto runner: a turn's ops shared across pool tasks, one per thread, every job getting
// exactly its own results, and one failing task failing only the jobs whose ops it carried.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CoalescingCryptoRunner } from '../../workers/crypto/coalescing-runner.js';
import type { CryptoOp, CryptoResult, CryptoRunner } from '../../workers/crypto/types.js';

const op = (label: string): CryptoOp => ({
  op: 'nip44_encrypt',
  sk: new Uint8Array(32),
  peer: label,
  plaintext: label,
});

class RecordingRunner implements CryptoRunner {
  tasks: string[][] = [];
  failIfContains?: string;
  async run(ops: CryptoOp[]): Promise<CryptoResult[]> {
    const labels = ops.map((o) => (o as { peer: string }).peer);
    this.tasks.push(labels);
    await new Promise((r) => setTimeout(r, 5));
    if (this.failIfContains && labels.includes(this.failIfContains)) throw new Error('pool crashed');
    return labels.map((l) => ({ ok: true, value: `done ${l}` }));
  }
  async close() {}
}

const values = (rs: CryptoResult[]) => rs.map((r) => (r.ok ? r.value : r.error));

test('jobs of one turn share tasks, one per thread, and each gets its own results in order', async () => {
  const inner = new RecordingRunner();
  const runner = new CoalescingCryptoRunner(inner, { parallelism: 2 });
  const jobs = [['a1', 'a2', 'a3'], ['b1'], ['c1', 'c2']];
  const results = await Promise.all(jobs.map((labels) => runner.run(labels.map(op))));
  assert.deepEqual(
    results.map(values),
    jobs.map((labels) => labels.map((l) => `done ${l}`)),
  );
  assert.deepEqual(
    inner.tasks,
    [
      ['a1', 'a2', 'a3'],
      ['b1', 'c1', 'c2'],
    ],
    'six ops over two tasks',
  );
});

test('one job alone is still split across the threads; a single op is one task', async () => {
  const inner = new RecordingRunner();
  const runner = new CoalescingCryptoRunner(inner, { parallelism: 2 });
  assert.deepEqual(values(await runner.run(['x1', 'x2', 'x3', 'x4', 'x5'].map(op))), [
    'done x1',
    'done x2',
    'done x3',
    'done x4',
    'done x5',
  ]);
  assert.deepEqual(inner.tasks, [
    ['x1', 'x2', 'x3'],
    ['x4', 'x5'],
  ]);
  await runner.run([op('y')]);
  assert.deepEqual(inner.tasks.at(-1), ['y']);
});

test('maxOpsPerTask caps a task', async () => {
  const inner = new RecordingRunner();
  const capped = new CoalescingCryptoRunner(inner, { parallelism: 1, maxOpsPerTask: 2 });
  await capped.run(['a', 'b', 'c', 'd', 'e'].map(op));
  assert.deepEqual(inner.tasks, [['a', 'b'], ['c', 'd'], ['e']]);
});

test('a failing task rejects the jobs whose ops it carried, and only those', async () => {
  const inner = new RecordingRunner();
  inner.failIfContains = 'b1';
  const runner = new CoalescingCryptoRunner(inner, { parallelism: 2 });
  const [a, b, c] = await Promise.allSettled([
    runner.run([op('a1'), op('a2')]),
    runner.run([op('b1')]),
    runner.run([op('c1')]),
  ]);
  assert.equal(a.status, 'fulfilled');
  assert.equal(b.status, 'rejected');
  assert.equal(c.status, 'rejected', 'c1 shared the failing task with b1');
  assert.deepEqual(inner.tasks, [
    ['a1', 'a2'],
    ['b1', 'c1'],
  ]);
});
