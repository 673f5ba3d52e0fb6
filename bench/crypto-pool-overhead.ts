// What a piscina task costs on top of its crypto, by batch size: the numbers behind micro-batching.
// `node dist/bench/crypto-pool-overhead.js [--threads N]`
//  - round trip: one task holding one op that fails at once (no crypto), awaited one after another;
//  - per batch size: sign_event ops (validate, sign, verify) run one task at a time on the pool, and
//    with enough tasks in flight to keep every thread busy; compared with the same ops run inline.
import { availableParallelism } from 'node:os';
import { CryptoPool } from '../workers/crypto/pool.js';
import { runCryptoOps } from '../workers/crypto/ops.js';
import type { CryptoOp } from '../workers/crypto/types.js';
import { generateSecretKey, getPublicKeyHex } from '../shared/nostr/keys.js';

function signOps(count: number): CryptoOp[] {
  const sk = generateSecretKey();
  const pubkey = getPublicKeyHex(sk);
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
      runCryptoOps(ops);
      const inlineStart = performance.now();
      for (let t = 0; t < tasks; t++) runCryptoOps(ops);
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
  } finally {
    await pool.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
