// The physical limit of signing on this machine: raw fast-backend Schnorr signatures of a 32-byte hash in
// N worker threads at once, with no queue, no event building and no verification. Every other number
// (pool throughput, HTTP RPC, NIP-46) is measured against this one.
//
// As a script: `node dist/bench/raw-schnorr.js [--threads N] [--duration ms]` prints per-op costs of the
// two backends (single thread), then the parallel rate.
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { pathToFileURL } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { fastSchnorr, referenceSchnorr, type SchnorrBackend } from '../shared/nostr/schnorr.js';
import { generateSecretKey } from '../shared/nostr/keys.js';
import { resolveCryptoBackend, type CryptoBackendName } from '../shared/nostr/crypto-backend.js';

export interface RawSchnorrRate {
  backend: string;
  threads: number;
  totalOpsPerSec: number;
  perThreadOpsPerSec: number[];
}

interface WorkerJob {
  rawSchnorrBench: true;
  durationMs: number;
  /** Without: signatures by the WASM build alone (the historical raw Schnorr rate). */
  crypto?: { backend: CryptoBackendName };
}

/**
 * The crypto ceiling of an HTTP sign_event: what the farm's crypto must do per request (a signature with
 * cached key material, then its verification before it leaves), on every core, nothing else.
 */
export async function measureCryptoCeiling(opts: {
  threads: number;
  durationMs: number;
  backend: CryptoBackendName;
}): Promise<RawSchnorrRate> {
  return measureRawSchnorrRate({ ...opts, crypto: { backend: opts.backend } });
}

type WorkerMessage = { type: 'ready' } | { type: 'done'; ops: number; elapsedMs: number };

export async function measureRawSchnorrRate(opts: {
  threads: number;
  durationMs: number;
  crypto?: WorkerJob['crypto'];
}): Promise<RawSchnorrRate> {
  if (!Number.isInteger(opts.threads) || opts.threads < 1) throw new RangeError('threads must be a positive integer');
  const job: WorkerJob = {
    rawSchnorrBench: true,
    durationMs: opts.durationMs,
    ...(opts.crypto ? { crypto: opts.crypto } : {}),
  };
  const workers = Array.from({ length: opts.threads }, () => new Worker(new URL(import.meta.url), { workerData: job }));
  try {
    // Start every thread at the same moment, after all have loaded the WASM module and warmed up.
    await Promise.all(workers.map((w) => nextMessage(w, 'ready')));
    const done = workers.map((w) => nextMessage(w, 'done'));
    for (const w of workers) w.postMessage('go');
    const results = (await Promise.all(done)) as Extract<WorkerMessage, { type: 'done' }>[];
    const perThreadOpsPerSec = results.map((r) => Math.round((r.ops * 1000) / r.elapsedMs));
    return {
      backend: opts.crypto
        ? `${resolveCryptoBackend(opts.crypto.backend).backend.description}: sign + verify`
        : fastSchnorr.name,
      threads: opts.threads,
      totalOpsPerSec: perThreadOpsPerSec.reduce((a, b) => a + b, 0),
      perThreadOpsPerSec,
    };
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

function nextMessage(worker: Worker, type: WorkerMessage['type']): Promise<WorkerMessage> {
  return new Promise((resolve, reject) => {
    const onMessage = (msg: WorkerMessage) => {
      if (msg.type !== type) return;
      worker.off('message', onMessage);
      worker.off('error', reject);
      resolve(msg);
    };
    worker.on('message', onMessage);
    worker.once('error', reject);
  });
}

function runWorker(job: WorkerJob): void {
  const port = parentPort;
  if (port === null) return;
  const sk = generateSecretKey();
  const msg = randomBytes(32);
  const aux = randomBytes(32);
  let op = () => void fastSchnorr.sign(msg, sk, aux);
  if (job.crypto) {
    const backend = resolveCryptoBackend(job.crypto.backend).backend;
    const material = backend.keyMaterial(sk);
    const pub = backend.getPublicKey(material);
    op = () => {
      const sig = backend.signWithKey(msg, material, pub);
      if (!backend.verify(sig, msg, pub)) throw new Error('signature did not verify');
    };
  }
  for (let i = 0; i < 50; i++) op();
  port.once('message', () => {
    let ops = 0;
    const start = performance.now();
    const end = start + job.durationMs;
    let now = start;
    while (now < end) {
      // Check the clock every 16 signatures: cheap next to a ~0.5 ms sign, precise enough at the end.
      for (let i = 0; i < 16; i++) op();
      ops += 16;
      now = performance.now();
    }
    port.postMessage({ type: 'done', ops, elapsedMs: now - start } satisfies WorkerMessage);
  });
  port.postMessage({ type: 'ready' } satisfies WorkerMessage);
}

/** Mean microseconds per call, after a short warm-up. */
function microsPerOp(iterations: number, fn: () => void): number {
  for (let i = 0; i < Math.min(20, iterations); i++) fn();
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) fn();
  return Number(process.hrtime.bigint() - start) / 1000 / iterations;
}

export function measureBackendCosts(
  iterations: { reference: number; fast: number } = { reference: 60, fast: 400 },
): { backend: string; signMicros: number; verifyMicros: number }[] {
  const sk = generateSecretKey();
  const msg = randomBytes(32);
  const rows: [SchnorrBackend, number][] = [
    [referenceSchnorr, iterations.reference],
    [fastSchnorr, iterations.fast],
  ];
  return rows.map(([backend, iterations]) => {
    const pub = backend.getPublicKey(sk);
    const sig = backend.sign(msg, sk);
    return {
      backend: backend.name,
      signMicros: microsPerOp(iterations, () => backend.sign(msg, sk)),
      verifyMicros: microsPerOp(iterations, () => backend.verify(sig, msg, pub)),
    };
  });
}

function argValue(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  const value = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number`);
  return value;
}

async function main(): Promise<void> {
  const threads = argValue('--threads', availableParallelism());
  const durationMs = argValue('--duration', 2000);
  console.log('Schnorr per-op cost, one thread (µs per op)');
  console.table(
    measureBackendCosts().map((r) => ({
      backend: r.backend,
      sign: r.signMicros.toFixed(0),
      verify: r.verifyMicros.toFixed(0),
    })),
  );
  const rate = await measureRawSchnorrRate({ threads, durationMs });
  console.log(`Raw parallel signing, ${rate.threads} thread(s), ${durationMs} ms, ${rate.backend}`);
  console.table({
    total: rate.totalOpsPerSec,
    ...Object.fromEntries(rate.perThreadOpsPerSec.map((v, i) => [`thread ${i}`, v])),
  });
}

if (!isMainThread && (workerData as Partial<WorkerJob> | null)?.rawSchnorrBench === true) {
  runWorker(workerData as WorkerJob);
} else if (isMainThread && process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
