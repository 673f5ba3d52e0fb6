// Random bytes for the hot path, drawn from a block of node's CSPRNG output. Each call of the CSPRNG
// costs about 2 µs whatever its size (12 bytes 2.3 µs, 4 KiB 5.2 µs on the bench machine), and the farm
// takes small amounts several times a request: a GCM nonce per sealed payload, BIP-340 aux randomness
// per signature. Every byte is handed out once and wiped from the block as it is; one block per thread
// (this module is loaded once per isolate), so no byte is ever shared between threads.
import { randomFillSync } from 'node:crypto';

const BLOCK_BYTES = 4096;
/** Larger requests are filled straight from the CSPRNG. */
const POOLED_MAX = 256;

const block = Buffer.alloc(BLOCK_BYTES);
let next = BLOCK_BYTES;

/** Fills `out` with fresh random bytes (never handed out before) and returns it. */
export function fillRandom<T extends Uint8Array>(out: T): T {
  const n = out.length;
  if (n > POOLED_MAX) return randomFillSync(out);
  if (next + n > BLOCK_BYTES) {
    randomFillSync(block);
    next = 0;
  }
  out.set(block.subarray(next, next + n));
  block.fill(0, next, next + n);
  next += n;
  return out;
}
