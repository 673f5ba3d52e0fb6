// The worker process's crypto pool: piscina threads running task.ts. Batching many ops into one task
// amortizes the per-task message passing (see the report in bench/ for the numbers).
import { Piscina } from 'piscina';
import { cryptoBackend, type CryptoBackendName } from '../../shared/nostr/crypto-backend.js';
import type { CryptoOp, CryptoResult, CryptoRunner } from './types.js';

export interface CryptoPoolOptions {
  threads: number;
  /** Tasks (batches) allowed to wait for a free thread; beyond it run() rejects with CryptoPoolFullError. */
  maxQueue?: number;
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

export class CryptoPoolFullError extends Error {
  override readonly name = 'CryptoPoolFullError';
  constructor() {
    super('crypto pool queue is full');
  }
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
      maxQueue: opts.maxQueue ?? Infinity,
      // The threads are the farm's signing capacity: keep them alive between bursts.
      idleTimeout: Infinity,
      workerData: { backend: opts.backend ?? cryptoBackend().name } satisfies CryptoPoolWorkerData,
    });
  }

  async run(ops: CryptoOp[]): Promise<CryptoResult[]> {
    if (this.#closed) throw new Error('crypto pool is closed');
    if (ops.length === 0) return [];
    try {
      return await this.#pool.run(ops);
    } catch (err) {
      if (err instanceof Error && err.message === 'Task queue is at limit') throw new CryptoPoolFullError();
      throw err;
    }
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
