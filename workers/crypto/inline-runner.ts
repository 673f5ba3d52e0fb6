// Work that costs less than posting it to a pool thread runs here, on the calling thread:
// - symmetric work whose conversation key is already at hand (NIP-44 or NIP-04 with a cached key), a
//   ChaCha20/AES pass and an HMAC, about 30 µs for a NIP-46 request; under NIP-46 load a round of such
//   decryptions spent 11 ms on average in the pool's queue (bench, 2 cores);
// - with the native backend, every op of a call of at most `curveOpsInline` ops: a native sign and its
//   verification take about 110 µs, about what the structured clone, the thread wake-up and the reply
//   message of a pool task cost the event loop, so posting saved nothing (docs/BENCHMARKS.md). Larger calls
//   still go to the pool so one job cannot hold the event loop for long. The WASM backend's curve ops (0.5
//   ms and more each) always go to the pool.
// Both bounded by text size: a 64 KiB NIP-44 payload is ~1 ms.
import { cryptoBackend } from '../../shared/nostr/crypto-backend.js';
import { runCryptoOps } from './ops.js';
import type { CryptoOp, CryptoResult, CryptoRunner } from './types.js';

/** Above this many characters of text, work goes to the pool. */
export const INLINE_MAX_TEXT = 8 * 1024;

const small = (text: unknown) => typeof text === 'string' && text.length <= INLINE_MAX_TEXT;

/** True for an op that needs no curve operation and is small: it may run on the event loop. */
export function runsInline(op: CryptoOp): boolean {
  switch (op.op) {
    case 'nip44_encrypt':
    case 'nip04_encrypt':
      return op.convKey !== undefined && small(op.plaintext);
    case 'nip44_decrypt':
    case 'nip04_decrypt':
      return op.convKey !== undefined && small(op.ciphertext);
    default:
      return false;
  }
}

/** True for an op whose texts are small: with a fast curve it may run on the event loop. */
export function smallOp(op: CryptoOp): boolean {
  switch (op.op) {
    case 'sign_event':
      return small((op.event as { content?: unknown } | undefined)?.content);
    case 'verify_event':
      return small(op.event?.content);
    case 'nip44_encrypt':
    case 'nip04_encrypt':
      return small(op.plaintext);
    case 'nip44_decrypt':
    case 'nip04_decrypt':
      return small(op.ciphertext);
    case 'nip46_respond':
      return (op.userOp === undefined || smallOp(op.userOp)) && (op.answer === undefined || small(op.answer.result));
    default:
      return false;
  }
}

export interface InlineOptions {
  /**
   * Calls of at most this many ops run whole on this thread when the backend is native (0: never).
   * Default 0; the farm passes CRYPTO_INLINE_MAX_OPS.
   */
  curveOpsInline?: number;
  /** Whether this thread's curve arithmetic is fast enough to run inline; default: the backend is native. */
  fastCurve?: () => boolean;
}

export class InlineCheapOpsRunner implements CryptoRunner {
  private readonly curveOpsInline: number;
  private readonly fastCurve: () => boolean;

  constructor(
    private readonly inner: CryptoRunner,
    opts: InlineOptions = {},
  ) {
    this.curveOpsInline = Math.max(0, opts.curveOpsInline ?? 0);
    this.fastCurve = opts.fastCurve ?? (() => cryptoBackend().name === 'native');
  }

  async run(ops: CryptoOp[]): Promise<CryptoResult[]> {
    if (ops.length > 0 && ops.length <= this.curveOpsInline && this.fastCurve() && ops.every(smallOp))
      return runCryptoOps(ops);
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
