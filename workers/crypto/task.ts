// The piscina task module: one call runs the ops of one job on a pool thread.
import { workerData } from 'piscina';
import { useCryptoBackend } from '../../shared/nostr/crypto-backend.js';
import type { CryptoPoolWorkerData } from './pool.js';
import type { CryptoOp, CryptoResult, KeyOp } from './types.js';
import { runCryptoOps } from './ops.js';

// The process chose its backend at start; a thread that cannot load the native one fails its tasks loudly.
useCryptoBackend((workerData as CryptoPoolWorkerData | undefined)?.backend ?? 'auto');

export default async function cryptoTask(ops: CryptoOp[]): Promise<CryptoResult[]> {
  try {
    return await runCryptoOps(ops);
  } finally {
    // The ops arrived here as structured-clone copies; wipe this thread's copies of the secrets so they
    // do not linger in the worker's heap until the next GC. The caller's originals are untouched.
    for (const op of ops) wipe(op);
  }
}

function wipe(op: CryptoOp | KeyOp | undefined): void {
  if (!op || op.op === 'verify_event') return;
  if (op.op === 'nip46_respond') {
    op.seal?.sk?.fill(0);
    op.seal?.convKey?.fill(0);
    wipe(op.userOp);
    return;
  }
  op.sk?.fill(0);
  if ('convKey' in op) op.convKey?.fill(0);
}
