// One pool task per event-loop turn instead of one per job: jobs of several shards that reach the crypto
// step together share a task. Posting a task costs the main thread a structured clone, a wake-up of a
// pool thread and a reply message; at hundreds of small jobs a second that overhead is worth sharing.
import type { CryptoOp, CryptoResult, CryptoRunner } from './types.js';

interface Waiting {
  ops: CryptoOp[];
  resolve: (results: CryptoResult[]) => void;
  reject: (err: unknown) => void;
}

export class CoalescingCryptoRunner implements CryptoRunner {
  private waiting: Waiting[] = [];
  private waitingOps = 0;
  private scheduled = false;

  constructor(
    private readonly inner: CryptoRunner,
    /** A task never carries more ops than this; beyond it the turn's work is split. */
    private readonly maxOps = 256,
  ) {}

  run(ops: CryptoOp[]): Promise<CryptoResult[]> {
    if (ops.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      this.waiting.push({ ops, resolve, reject });
      this.waitingOps += ops.length;
      if (this.waitingOps >= this.maxOps) this.flush();
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
    this.waitingOps = 0;
    if (group.length === 1) {
      const only = group[0]!;
      this.inner.run(only.ops).then(only.resolve, only.reject);
      return;
    }
    this.inner.run(group.flatMap((w) => w.ops)).then(
      (results) => {
        let at = 0;
        for (const w of group) {
          w.resolve(results.slice(at, at + w.ops.length));
          at += w.ops.length;
        }
      },
      (err: unknown) => {
        for (const w of group) w.reject(err);
      },
    );
  }

  close(): Promise<void> {
    this.flush();
    return this.inner.close();
  }
}
