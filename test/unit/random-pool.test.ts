// Random bytes drawn from a pooled block of CSPRNG output (GCM nonces, BIP-340 aux randomness): no byte
// is handed out twice, across refills of the block, and large requests bypass the block.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fillRandom } from '../../shared/random-pool.js';

test('draws never repeat, across many refills of the block, for nonce and aux sizes', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 20_000; i++) {
    const size = i % 3 === 0 ? 32 : 12;
    const hex = Buffer.from(fillRandom(new Uint8Array(size))).toString('hex');
    assert.equal(seen.has(hex), false, `draw ${i} repeated an earlier one`);
    seen.add(hex);
  }
});

test('fills exactly the buffer it is given, whatever its size, and returns it', () => {
  for (const size of [1, 12, 32, 255, 256, 257, 5000]) {
    const out = new Uint8Array(size + 2).subarray(1, size + 1);
    assert.equal(fillRandom(out), out);
    const whole = new Uint8Array(out.buffer);
    assert.equal(whole[0], 0, 'nothing written before the view');
    assert.equal(whole[size + 1], 0, 'nothing written after the view');
    if (size >= 12)
      assert.ok(
        out.some((b) => b !== 0),
        `${size} bytes all zero`,
      );
  }
});
