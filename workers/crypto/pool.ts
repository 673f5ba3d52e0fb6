// The worker process's crypto pool: piscina threads running task.ts. Batching many ops into one task
// amortizes the per-task message passing (docs/BENCHMARKS.md).
import { Piscina } from 'piscina';
import { cryptoBackend, type CryptoBackendName } from '../../shared/nostr/crypto-backend.js';
import type { CryptoOp, CryptoResult, CryptoRunner } from './types.js';

export interface CryptoPoolOptions {
  threads: number;
  /** The threads' crypto backend; default: the calling thread's (so the whole process runs on one). */
  backend?: CryptoBackendName;
}

/** What task.ts receives as piscina's workerData. */
export interface CryptoPoolWorkerData {
  backend: CryptoBackendName;
}

export interface CryptoPoolStats {
  threads: number;
  queueSize: number;
  completed: number;
  /** Share of the pool's thread time spent running tasks since start, 0..1. */
  utilization: number;
}

export class CryptoPool implements CryptoRunner {
  readonly #pool: Piscina<CryptoOp[], CryptoResult[]>;
  readonly #threads: number;
  #closed = false;

  constructor(opts: CryptoPoolOptions) {
    if (!Number.isInteger(opts.threads) || opts.threads < 1) throw new RangeError('threads must be a positive integer');
    this.#threads = opts.threads;
    this.#pool = new Piscina({
      filename: new URL('./task.js', import.meta.url).href,
      minThreads: opts.threads,
      maxThreads: opts.threads,
      // Unbounded: admission (QUEUE_LIMIT per shard) and JOB_CONCURRENCY already bound the work queued here.
      maxQueue: Infinity,
      // The threads are the farm's signing capacity: keep them alive between bursts.
      idleTimeout: Infinity,
      workerData: { backend: opts.backend ?? cryptoBackend().name } satisfies CryptoPoolWorkerData,
    });
  }

  async run(ops: CryptoOp[]): Promise<CryptoResult[]> {
    if (this.#closed) throw new Error('crypto pool is closed');
    if (ops.length === 0) return [];
    return this.#pool.run(ops);
  }

  stats(): CryptoPoolStats {
    return {
      threads: this.#threads,
      queueSize: this.#pool.queueSize,
      completed: this.#pool.completed,
      utilization: this.#pool.utilization,
    };
  }

  /** Lets queued and running tasks finish, then stops the threads. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.close();
  }
}
