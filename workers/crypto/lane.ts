// The crypto lane: the event loop keeps the work it must do anyway (validating, serializing, hashing, the
// symmetric ciphers) and hands only the curve operations to a dedicated thread, as fixed-size binary
// records (lane-records.ts). The records of one crypto call (a job's round: flush()), or else of one
// event-loop turn, go in ONE ArrayBuffer, transferred, not cloned: one message each way per batch, however
// many ops it holds. A batch per call rather than per turn lets the thread answer each job as soon as its
// own records are done, not after every job of the turn. A pool task instead structured-clones whole ops
// (events, texts, key material) and cost the event loop about what the curve work itself did.
//
// A thread that dies fails the batches it held (their ops get an error, they do not hang) and is
// replaced on the next batch. Secret bytes (key material in, ECDH shared x out) live only in the batch
// buffer: the thread wipes each key after use, this side wipes the whole buffer once it has read it.
import { Worker } from 'node:worker_threads';
import { cryptoBackend, type CryptoBackendName } from '../../shared/nostr/crypto-backend.js';
import { InvalidKeyError } from '../../shared/nostr/key-error.js';
import { type Curve, CurveCheckError } from './curve.js';
import {
  batchBytes,
  HEADER_BYTES,
  KEY_ERRORS,
  KEY_MAX,
  LaneOp,
  LaneStatus,
  OFF_KEY,
  OFF_KEY_LENGTH,
  OFF_MSG,
  OFF_OP,
  OFF_PUB,
  OFF_SIG,
  OFF_STATUS,
  RECORD_BYTES,
  setRecordCount,
} from './lane-records.js';
import type { LaneWorkerData } from './lane-thread.js';

export interface CryptoLaneOptions {
  /** Lane threads; batches go to them in turn. Default 1. */
  threads?: number;
  /** The threads' backend; default this thread's. */
  backend?: CryptoBackendName;
  /** Records per message at most; a turn with more sends several. Default 128. */
  maxBatch?: number;
  /** Told when a thread stops unexpectedly (its batches have failed). */
  onThreadError?: (err: Error) => void;
  /** The thread's module; default lane-thread.js. */
  threadUrl?: URL;
}

/** How a record's answer settles its promise. */
const SIGN = 0;
const VERIFY = 1;
const ECDH = 2;

interface Waiting {
  kind: typeof SIGN | typeof VERIFY | typeof ECDH;
  resolve: (value: never) => void;
  reject: (err: Error) => void;
}

interface LaneThread {
  worker: Worker;
  /** Batches sent and not answered, in order (the thread answers in order). */
  inflight: Waiting[][];
  dead: boolean;
}

/** Wiped buffers kept for the next batches. */
const FREE_BUFFERS = 4;

export class LaneThreadError extends Error {
  override readonly name = 'LaneThreadError';
}

export class CryptoLane implements Curve {
  readonly #threads: (LaneThread | undefined)[];
  readonly #backend: CryptoBackendName;
  readonly #maxBatch: number;
  readonly #threadUrl: URL;
  readonly #onThreadError: ((err: Error) => void) | undefined;
  readonly #free: ArrayBuffer[] = [];
  #bytes: Uint8Array | undefined;
  #waiting: Waiting[] = [];
  #scheduled = false;
  #next = 0;
  #closed = false;
  #drained: (() => void) | undefined;

  constructor(opts: CryptoLaneOptions = {}) {
    const threads = opts.threads ?? 1;
    if (!Number.isInteger(threads) || threads < 1) throw new RangeError('threads must be a positive integer');
    this.#threads = new Array<LaneThread | undefined>(threads).fill(undefined);
    this.#backend = opts.backend ?? cryptoBackend().name;
    this.#maxBatch = Math.max(1, opts.maxBatch ?? 128);
    this.#threadUrl = opts.threadUrl ?? new URL('./lane-thread.js', import.meta.url);
    this.#onThreadError = opts.onThreadError;
    for (let i = 0; i < threads; i++) this.#threads[i] = this.#spawn();
  }

  sign(msg32: Uint8Array, key: Uint8Array, pubX: Uint8Array, check: boolean): Promise<Uint8Array> {
    return this.#add(SIGN, (r) => {
      r[OFF_OP] = check ? LaneOp.SignChecked : LaneOp.Sign;
      putKey(r, key);
      r.set(bytes32(msg32, 'message'), OFF_MSG);
      r.set(bytes32(pubX, 'public key'), OFF_PUB);
    });
  }

  verify(sig: Uint8Array, msg32: Uint8Array, pubX: Uint8Array): Promise<boolean> {
    if (!isBytes(sig, 64) || !isBytes(msg32, 32) || !isBytes(pubX, 32)) return Promise.resolve(false);
    return this.#add(VERIFY, (r) => {
      r[OFF_OP] = LaneOp.Verify;
      r.set(msg32, OFF_MSG);
      r.set(pubX, OFF_PUB);
      r.set(sig, OFF_SIG);
    });
  }

  ecdhX(key: Uint8Array, peerX: Uint8Array): Promise<Uint8Array> {
    if (!isBytes(peerX, 32)) return Promise.reject(new InvalidKeyError('invalid peer pubkey'));
    return this.#add(ECDH, (r) => {
      r[OFF_OP] = LaneOp.Ecdh;
      putKey(r, key);
      r.set(peerX, OFF_PUB);
    });
  }

  /** Sends the records waiting now, as one batch. */
  flush(): void {
    this.#flush();
  }

  /** Sends what is waiting, lets every batch come back, then stops the threads. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#flush();
    this.#closed = true;
    if (this.#threads.some((t) => t && t.inflight.length > 0))
      await new Promise<void>((resolve) => (this.#drained = resolve));
    const threads = this.#threads.splice(0);
    await Promise.all(threads.map((t) => t?.worker.terminate()));
    for (const buffer of this.#free.splice(0)) new Uint8Array(buffer).fill(0);
  }

  #add<T>(kind: Waiting['kind'], fill: (record: Uint8Array) => void): Promise<T> {
    if (this.#closed) return Promise.reject(new LaneThreadError('crypto lane is closed'));
    const n = this.#waiting.length;
    const bytes = (this.#bytes ??= new Uint8Array(this.#free.pop() ?? new ArrayBuffer(batchBytes(this.#maxBatch))));
    const at = HEADER_BYTES + n * RECORD_BYTES;
    try {
      fill(bytes.subarray(at, at + RECORD_BYTES));
    } catch (err) {
      bytes.fill(0, at, at + RECORD_BYTES);
      return Promise.reject(err);
    }
    const answer = new Promise<T>((resolve, reject) =>
      this.#waiting.push({ kind, resolve: resolve as (value: never) => void, reject }),
    );
    if (n + 1 >= this.#maxBatch) this.#flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.#flush());
    }
    return answer;
  }

  #flush(): void {
    this.#scheduled = false;
    const bytes = this.#bytes;
    const waiting = this.#waiting;
    if (bytes === undefined || waiting.length === 0) return;
    this.#bytes = undefined;
    this.#waiting = [];
    setRecordCount(bytes, waiting.length);
    const index = this.#next++ % this.#threads.length;
    let thread = this.#threads[index];
    if (thread === undefined || thread.dead) thread = this.#threads[index] = this.#spawn();
    if (thread.inflight.length === 0) thread.worker.ref();
    thread.inflight.push(waiting);
    const buffer = bytes.buffer as ArrayBuffer;
    thread.worker.postMessage(buffer, [buffer]);
  }

  #spawn(): LaneThread {
    const worker = new Worker(this.#threadUrl, { workerData: { backend: this.#backend } satisfies LaneWorkerData });
    const thread: LaneThread = { worker, inflight: [], dead: false };
    worker.unref();
    worker.on('message', (buffer: ArrayBuffer) => this.#answer(thread, buffer));
    const stop = (err: Error) => {
      if (thread.dead) return;
      thread.dead = true;
      const lost = thread.inflight.splice(0);
      for (const batch of lost) for (const w of batch) w.reject(err);
      if (!this.#closed || lost.length > 0) this.#onThreadError?.(err);
      this.#checkDrained();
    };
    worker.on('error', (err) => stop(new LaneThreadError(`crypto lane thread failed: ${err.message}`)));
    worker.on('messageerror', (err) => stop(new LaneThreadError(`crypto lane message failed: ${err.message}`)));
    worker.on('exit', (code) => stop(new LaneThreadError(`crypto lane thread exited (code ${code})`)));
    return thread;
  }

  #answer(thread: LaneThread, buffer: ArrayBuffer): void {
    const batch = thread.inflight.shift();
    if (thread.inflight.length === 0) thread.worker.unref();
    const bytes = new Uint8Array(buffer);
    if (batch !== undefined) {
      for (let i = 0; i < batch.length; i++) {
        const at = HEADER_BYTES + i * RECORD_BYTES;
        settle(batch[i]!, bytes.subarray(at, at + RECORD_BYTES));
      }
      bytes.fill(0, 0, batchBytes(batch.length));
    } else {
      bytes.fill(0);
    }
    if (this.#free.length < FREE_BUFFERS && !this.#closed) this.#free.push(buffer);
    this.#checkDrained();
  }

  #checkDrained(): void {
    if (this.#drained && this.#threads.every((t) => !t || t.inflight.length === 0)) {
      this.#drained();
      this.#drained = undefined;
    }
  }
}

function settle(w: Waiting, r: Uint8Array): void {
  const status = r[OFF_STATUS]!;
  if (w.kind === VERIFY) return w.resolve((status === LaneStatus.Ok) as never);
  if (status === LaneStatus.Ok) {
    const out = w.kind === SIGN ? r.slice(OFF_SIG, OFF_SIG + 64) : r.slice(OFF_MSG, OFF_MSG + 32);
    return w.resolve(out as never);
  }
  if (status === LaneStatus.CheckFailed) return w.reject(new CurveCheckError());
  if (status >= LaneStatus.KeyError)
    return w.reject(new InvalidKeyError(KEY_ERRORS[status - LaneStatus.KeyError] ?? KEY_ERRORS[0]));
  w.reject(new LaneThreadError('crypto lane: operation failed'));
}

function isBytes(b: unknown, length: number): b is Uint8Array {
  return b instanceof Uint8Array && b.length === length;
}

function bytes32(b: Uint8Array, what: string): Uint8Array {
  if (!isBytes(b, 32)) throw new TypeError(`${what}: wrong length`);
  return b;
}

function putKey(record: Uint8Array, key: Uint8Array): void {
  if (!(key instanceof Uint8Array) || (key.length !== 32 && key.length !== KEY_MAX))
    throw new InvalidKeyError('invalid key material');
  record[OFF_KEY_LENGTH] = key.length;
  record.set(key, OFF_KEY);
}
