// Symmetric work whose conversation key is already at hand (NIP-44 or NIP-04 with a cached key) is a
// ChaCha20/AES pass and an HMAC: about 30 µs for a NIP-46 request. That is less than posting it to a
// pool thread, and far less than waiting there behind batches of signatures: under NIP-46 load a round
// of such decryptions spent 11 ms on average in the pool's queue (bench, 2 cores). So those ops run here
// on the calling thread, up to a size bound; every op with a curve operation goes to the inner runner.
import { runCryptoOps } from './ops.js';
import type { CryptoOp, CryptoResult, CryptoRunner } from './types.js';

/** Above this many characters of text, symmetric work goes to the pool too (a 64 KiB NIP-44 payload is ~1 ms). */
export const INLINE_MAX_TEXT = 8 * 1024;

/** True for an op that needs no curve operation and is small: it may run on the event loop. */
export function runsInline(op: CryptoOp): boolean {
  switch (op.op) {
    case 'nip44_encrypt':
    case 'nip04_encrypt':
      return op.convKey !== undefined && typeof op.plaintext === 'string' && op.plaintext.length <= INLINE_MAX_TEXT;
    case 'nip44_decrypt':
    case 'nip04_decrypt':
      return op.convKey !== undefined && typeof op.ciphertext === 'string' && op.ciphertext.length <= INLINE_MAX_TEXT;
    default:
      return false;
  }
}

export class InlineCheapOpsRunner implements CryptoRunner {
  constructor(private readonly inner: CryptoRunner) {}

  async run(ops: CryptoOp[]): Promise<CryptoResult[]> {
    const inline = ops.map(runsInline);
    if (!inline.includes(true)) return this.inner.run(ops);
    const rest = ops.filter((_, i) => !inline[i]);
    const pooled = rest.length > 0 ? this.inner.run(rest) : undefined;
    const here = runCryptoOps(ops.filter((_, i) => inline[i]));
    const there = pooled ? await pooled : [];
    let h = 0;
    let t = 0;
    return inline.map((isHere) => (isHere ? here[h++]! : there[t++]!));
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
