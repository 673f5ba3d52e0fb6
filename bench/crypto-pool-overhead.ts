// What a piscina task costs on top of its crypto, by batch size: the numbers behind micro-batching.
// `node dist/bench/crypto-pool-overhead.js [--threads N]`
//  - round trip: one task holding one op that fails at once (no crypto), awaited one after another;
//  - per batch size: sign_event ops (validate, sign, verify) run one task at a time on the pool, and
//    with enough tasks in flight to keep every thread busy; compared with the same ops run inline;
//  - event-loop time per op (sign_event with a cached keypair, 8 or 64 ops a call, two calls in flight): the ops
//    and their curve work on the event loop, the curve work on the crypto lane, the whole ops on the pool.
import { availableParallelism } from 'node:os';
import { CryptoPool } from '../workers/crypto/pool.js';
import { runCryptoOps } from '../workers/crypto/ops.js';
import type { CryptoOp } from '../workers/crypto/types.js';
import { generateSecretKey, getPublicKeyHex } from '../shared/nostr/keys.js';
import { cryptoBackend } from '../shared/nostr/crypto-backend.js';
import { localCurve } from '../workers/crypto/curve.js';
import { CryptoLane } from '../workers/crypto/lane.js';

function signOps(count: number, keyMaterial = false): CryptoOp[] {
  const secret = generateSecretKey();
  const sk = keyMaterial ? cryptoBackend().keyMaterial(secret) : secret;
  const pubkey = getPublicKeyHex(secret);
  return Array.from({ length: count }, (_, i) => ({
    op: 'sign_event' as const,
    sk,
    pubkey,
    event: { kind: 1, content: `benchmark note ${i}`, tags: [['t', 'bench']], created_at: 1700000000 + i },
  }));
}

async function timeSequential(pool: CryptoPool, ops: CryptoOp[], tasks: number): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < tasks; i++) await pool.run(ops);
  return (performance.now() - start) / tasks;
}

async function timeSaturated(pool: CryptoPool, ops: CryptoOp[], tasks: number, inFlight: number): Promise<number> {
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next++ < tasks) await pool.run(ops);
    }),
  );
  return performance.now() - start;
}

const round1 = (n: number) => Math.round(n * 10) / 10;

/** Main-thread busy time and wall time per op, `calls` calls of `ops` with two in flight. */
async function eventLoopCost(run: (ops: CryptoOp[]) => Promise<unknown>, ops: CryptoOp[], calls: number) {
  let next = 0;
  const elu = performance.eventLoopUtilization();
  const start = performance.now();
  await Promise.all(
    [0, 1].map(async () => {
      while (next++ < calls) await run(ops);
    }),
  );
  const wall = performance.now() - start;
  const used = performance.eventLoopUtilization(elu);
  const n = calls * ops.length;
  return { busyUs: (used.active * 1000) / n, wallUs: (wall * 1000) / n };
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--threads');
  const threads = i >= 0 ? Number(process.argv[i + 1]) : availableParallelism();
  const pool = new CryptoPool({ threads });
  try {
    const noCrypto: CryptoOp[] = [{ op: 'nip04_decrypt', sk: generateSecretKey(), peer: 'x', ciphertext: '' }];
    await timeSequential(pool, noCrypto, 50);
    const roundTrip = await timeSequential(pool, noCrypto, 300);
    console.log(`task round trip without crypto: ${(roundTrip * 1000).toFixed(0)} µs`);

    const rows = [];
    for (const batch of [1, 4, 16, 64]) {
      const ops = signOps(batch);
      const tasks = Math.max(4, Math.round(256 / batch));
      await runCryptoOps(ops);
      const inlineStart = performance.now();
      for (let t = 0; t < tasks; t++) await runCryptoOps(ops);
      const inlinePerOp = (performance.now() - inlineStart) / tasks / batch;
      await timeSequential(pool, ops, 2);
      const sequentialPerTask = await timeSequential(pool, ops, tasks);
      const saturatedMs = await timeSaturated(pool, ops, tasks * threads, threads * 2);
      rows.push({
        batch,
        'inline µs/op': Math.round(inlinePerOp * 1000),
        'pool µs/op (1 task at a time)': Math.round((sequentialPerTask / batch) * 1000),
        'overhead µs/task': Math.round((sequentialPerTask - inlinePerOp * batch) * 1000),
        'pool ops/s (saturated)': Math.round((tasks * threads * batch * 1000) / saturatedMs),
      });
    }
    console.log(`sign_event ops (validate + sign + verify), ${threads} thread(s)`);
    console.table(rows);

    const lane = new CryptoLane({ threads: 1 });
    const costs = [];
    for (const size of [8, 64]) {
      const ops = signOps(size, true);
      const ways: [string, (ops: CryptoOp[]) => Promise<unknown>][] = [
        ['event loop (curve here)', (o) => runCryptoOps(o, localCurve)],
        ['crypto lane (1 thread)', (o) => runCryptoOps(o, lane)],
        ['crypto lane, one call per op', (o) => Promise.all(o.map((op) => runCryptoOps([op], lane)))],
        [`pool (${threads} threads)`, (o) => pool.run(o)],
      ];
      for (const [name, run] of ways) {
        await eventLoopCost(run, ops, 20);
        const { busyUs, wallUs } = await eventLoopCost(run, ops, Math.round(12800 / size));
        costs.push({
          where: name,
          'ops a call': size,
          'event-loop µs/op': round1(busyUs),
          'wall µs/op': round1(wallUs),
        });
      }
    }
    await lane.close();
    console.log('sign_event with a cached keypair, 2 calls in flight');
    console.table(costs);
  } finally {
    await pool.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
