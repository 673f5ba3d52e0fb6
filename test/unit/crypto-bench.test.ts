import { test } from 'node:test';
import assert from 'node:assert/strict';
import { measureBackendCosts, measureRawSchnorrRate } from '../../bench/raw-schnorr.js';

test('measureRawSchnorrRate reports a per-thread and total rate from real worker threads', async () => {
  const rate = await measureRawSchnorrRate({ threads: 1, durationMs: 150 });
  assert.equal(rate.threads, 1);
  assert.match(rate.backend, /libsecp256k1/);
  assert.equal(rate.perThreadOpsPerSec.length, 1);
  assert.ok((rate.perThreadOpsPerSec[0] as number) > 0);
  assert.equal(rate.totalOpsPerSec, rate.perThreadOpsPerSec[0]);
  await assert.rejects(measureRawSchnorrRate({ threads: 0, durationMs: 10 }), RangeError);
});

test('measureBackendCosts times both backends', () => {
  const rows = measureBackendCosts({ reference: 5, fast: 20 });
  assert.deepEqual(
    rows.map((r) => r.backend),
    ['@noble/curves', 'libsecp256k1-wasm (tiny-secp256k1)'],
  );
  for (const row of rows) assert.ok(row.signMicros > 0 && row.verifyMicros > 0);
});
