// Jobs that reach the crypto step in one event-loop turn share pool tasks: posting a task costs the main
// thread a structured clone, a wake-up of a pool thread and a reply message, and at hundreds of small
// jobs a second that overhead is worth sharing. With `parallelism` > 1 a turn's ops are cut into that
// many tasks so one large task does not keep a single thread busy while the others sit idle (the farm
// passes its thread count, bin/roles.ts). A turn is never cut into more tasks than it has ops.
import type { CryptoOp, CryptoResult, CryptoRunner } from './types.js';

interface Waiting {
  ops: CryptoOp[];
  resolve: (results: CryptoResult[]) => void;
  reject: (err: unknown) => void;
}

export interface CoalescingOptions {
  /** Tasks the pool runs at once (its threads): a turn's ops are spread over this many tasks. */
  parallelism?: number;
  /** A task never carries more ops than this; beyond it the turn's work takes more tasks. */
  maxOpsPerTask?: number;
}

export class CoalescingCryptoRunner implements CryptoRunner {
  private waiting: Waiting[] = [];
  private waitingOps = 0;
  private scheduled = false;
  private readonly parallelism: number;
  private readonly maxOps: number;

  constructor(
    private readonly inner: CryptoRunner,
    opts: CoalescingOptions = {},
  ) {
    this.parallelism = Math.max(1, opts.parallelism ?? 1);
    this.maxOps = Math.max(1, opts.maxOpsPerTask ?? 256);
  }

  run(ops: CryptoOp[]): Promise<CryptoResult[]> {
    if (ops.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      this.waiting.push({ ops, resolve, reject });
      this.waitingOps += ops.length;
      if (this.waitingOps >= this.maxOps * this.parallelism) this.flush();
      else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const group = this.waiting;
    if (group.length === 0) return;
    this.waiting = [];
    const total = this.waitingOps;
    this.waitingOps = 0;
    const tasks = Math.min(Math.max(this.parallelism, Math.ceil(total / this.maxOps)), total);
    if (tasks === 1 && group.length === 1) {
      const only = group[0]!;
      this.inner.run(only.ops).then(only.resolve, only.reject);
      return;
    }
    const all = group.flatMap((w) => w.ops);
    const size = Math.ceil(all.length / tasks);
    const chunks: Promise<CryptoResult[]>[] = [];
    for (let at = 0; at < all.length; at += size) chunks.push(this.inner.run(all.slice(at, at + size)));
    // Each job is answered as soon as the tasks holding its ops are done, not when the whole turn is.
    let at = 0;
    for (const w of group) {
      const from = at;
      const to = at + w.ops.length;
      at = to;
      const parts: Promise<CryptoResult[]>[] = [];
      for (let c = Math.floor(from / size); c * size < to; c++) {
        const start = c * size;
        parts.push(chunks[c]!.then((r) => r.slice(Math.max(0, from - start), Math.min(size, to - start))));
      }
      Promise.all(parts).then((r) => w.resolve(r.flat()), w.reject);
    }
  }

  close(): Promise<void> {
    this.flush();
    return this.inner.close();
  }
}
