import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { MicroBatcher } from '../../shared/farm/micro-batcher.js';

test('what arrives for one shard in one event-loop turn becomes one batch', async () => {
  const flushed: [number, number[]][] = [];
  const b = new MicroBatcher<number>((shard, items) => void flushed.push([shard, items]));
  for (let i = 0; i < 50; i++) b.add(3, i);
  b.add(7, 100);
  assert.equal(flushed.length, 0, 'nothing leaves before the turn ends');
  assert.equal(b.pending, 51);
  await nextTurn();
  assert.deepEqual(flushed, [
    [3, Array.from({ length: 50 }, (_, i) => i)],
    [7, [100]],
  ]);
  assert.equal(b.pending, 0);

  b.add(3, 1);
  await nextTurn();
  b.add(3, 2);
  await nextTurn();
  assert.deepEqual(
    flushed.slice(2),
    [
      [3, [1]],
      [3, [2]],
    ],
    'separate turns make separate batches',
  );
});

test('a batch leaves as soon as it reaches the cap', async () => {
  const flushed: number[][] = [];
  const b = new MicroBatcher<number>((_s, items) => void flushed.push(items), { maxBatch: 256 });
  for (let i = 0; i < 600; i++) b.add(0, i);
  assert.deepEqual(
    flushed.map((x) => x.length),
    [256, 256],
  );
  await nextTurn();
  assert.deepEqual(
    flushed.map((x) => x.length),
    [256, 256, 88],
  );
  assert.deepEqual(
    flushed.flat(),
    Array.from({ length: 600 }, (_, i) => i),
    'order is kept',
  );
});

test('with a window, what arrives within it across turns becomes one batch', async () => {
  const flushed: number[][] = [];
  const b = new MicroBatcher<number>((_s, items) => void flushed.push(items), { maxBatch: 256, windowMs: 20 });
  b.add(0, 1);
  await nextTurn();
  b.add(0, 2);
  await nextTurn();
  assert.equal(flushed.length, 0);
  await new Promise((r) => setTimeout(r, 30));
  assert.deepEqual(flushed, [[1, 2]]);
});

/** A flush whose batches stay in flight until the test answers them. */
function gatedFlush() {
  const sent: { shard: number; items: number[]; answer: () => void }[] = [];
  const flush = (shard: number, items: number[]) =>
    new Promise<void>((resolve) => sent.push({ shard, items, answer: resolve }));
  return { sent, flush };
}

test('group commit: while a shard has a batch in flight, new requests gather into the next one', async () => {
  const { sent, flush } = gatedFlush();
  const b = new MicroBatcher<number>(flush, { maxInFlight: 1, holdMaxMs: 1000 });
  b.add(0, 1);
  await nextTurn();
  assert.deepEqual(
    sent.map((s) => s.items),
    [[1]],
  );
  for (let i = 2; i <= 5; i++) {
    b.add(0, i);
    await nextTurn();
  }
  b.add(9, 42);
  await nextTurn();
  assert.deepEqual(
    sent.map((s) => s.items),
    [[1], [42]],
    'shard 0 waits for its slot; shard 9 is not held back',
  );
  sent[0]!.answer();
  await nextTurn();
  assert.deepEqual(
    sent.map((s) => s.items),
    [[1], [42], [2, 3, 4, 5]],
    'the answer releases one batch of everything gathered',
  );
});

test('group commit: a batch is not held past holdMaxMs behind a stalled one', async () => {
  const { sent, flush } = gatedFlush();
  const b = new MicroBatcher<number>(flush, { maxInFlight: 1, holdMaxMs: 30 });
  b.add(0, 1);
  await nextTurn();
  b.add(0, 2);
  await nextTurn();
  assert.equal(sent.length, 1);
  await new Promise((r) => setTimeout(r, 60));
  assert.deepEqual(
    sent.map((s) => s.items),
    [[1], [2]],
  );
});

test('group commit: a timer firing early re-arms for what is left of the hold, not a whole hold', async () => {
  // libuv timers count from the loop time, which can lag performance.now(): a hold timer may fire before
  // the hold is over. A clock that falls 5 ms behind once batch 2 waits plays that timer firing early.
  let lag = 0;
  const { sent, flush } = gatedFlush();
  const b = new MicroBatcher<number>(flush, { maxInFlight: 1, holdMaxMs: 40, now: () => performance.now() - lag });
  b.add(0, 1);
  await nextTurn();
  lag = 5;
  b.add(0, 2);
  await nextTurn();
  assert.deepEqual(
    sent.map((s) => s.items),
    [[1]],
    'held while batch 1 is out',
  );
  await new Promise((r) => setTimeout(r, 70)); // a whole second hold would take it to about 80 ms
  assert.deepEqual(
    sent.map((s) => s.items),
    [[1], [2]],
  );
});

test('group commit: a full batch leaves at once, and flushAll sends everything', async () => {
  const { sent, flush } = gatedFlush();
  const b = new MicroBatcher<number>(flush, { maxInFlight: 1, maxBatch: 3, holdMaxMs: 1000 });
  b.add(0, 1);
  await nextTurn();
  for (let i = 2; i <= 4; i++) b.add(0, i);
  assert.deepEqual(
    sent.map((s) => s.items),
    [[1], [2, 3, 4]],
  );
  b.add(0, 5);
  b.flushAll();
  assert.deepEqual(
    sent.map((s) => s.items),
    [[1], [2, 3, 4], [5]],
  );
  assert.equal(b.pending, 0);
});
