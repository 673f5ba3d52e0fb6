// Which ops run here, on the calling thread (the event loop), and which go whole to the pool:
// - symmetric work whose conversation key is already at hand (NIP-44 or NIP-04 with a cached key), a
//   ChaCha20/AES pass and an HMAC, about 30 µs for a NIP-46 request: always here (under NIP-46 load a round
//   of such decryptions spent 11 ms on average in the pool's queue, bench, 2 cores);
// - with a `curve` (the crypto lane, lane.ts, or the native backend on this thread), every op with small
//   texts: its validation, hashing and ciphers run here and its curve work goes to the curve. The WASM
//   backend gets no curve: its curve ops (0.5 ms and more each) go whole to the pool.
// Both bounded by text size (a 64 KiB NIP-44 payload is ~1 ms): larger work goes to the pool.
import type { Curve } from './curve.js';
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
  /** Where the curve work of ops run here goes; without one, only symmetric ops with a key at hand run here. */
  curve?: Curve;
}

export class InlineCheapOpsRunner implements CryptoRunner {
  private readonly curve: Curve | undefined;

  constructor(
    private readonly inner: CryptoRunner,
    opts: InlineOptions = {},
  ) {
    this.curve = opts.curve;
  }

  async run(ops: CryptoOp[]): Promise<CryptoResult[]> {
    const inline = ops.map(this.curve ? smallOp : runsInline);
    if (!inline.includes(true)) return this.inner.run(ops);
    if (!inline.includes(false)) return runCryptoOps(ops, this.curve);
    const pooled = this.inner.run(ops.filter((_, i) => !inline[i]));
    const [here, there] = await Promise.all([
      runCryptoOps(
        ops.filter((_, i) => inline[i]),
        this.curve,
      ),
      pooled,
    ]);
    let h = 0;
    let t = 0;
    return inline.map((isHere) => (isHere ? here[h++]! : there[t++]!));
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
