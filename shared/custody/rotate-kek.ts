// KEK rotation: re-wraps the DEK of every key row, and of the farm payload key (payload_keys), not yet
// under the KeyManager's active KEK. Ciphertexts stay as they are; only wrapped_dek and kek_id change, so
// the secret each row holds never changes.
//
// The walk goes in id order, a batch per transaction (rows locked FOR UPDATE), and only ever selects rows
// not under the target KEK: a rerun after a kill skips what is done, and a second walk from the start
// picks up rows created under the old KEK while the first one ran. Services keep working throughout: a
// row is either under the old KEK or the new one, and its kek_id says which.
import { inTransaction, type Db } from '../../database/pool.js';
import { countKeysByKek, lockKeysNotUnder, updateWrappedDek } from '../../database/queries/keys.js';
import { lockPayloadKeysNotUnder, updatePayloadKeyWrappedDek } from '../../database/queries/payload-keys.js';
import { rewrapSecret } from './envelope.js';
import { KeyManagerUnavailableError, type KeyManager } from './key-manager.js';

/** Two rotations at once would only fight over rows: the second one is refused. */
const ROTATION_LOCK_ID = 0x6b66_726b; // "kfrk"

export class RotationRefusedError extends Error {
  override name = 'RotationRefusedError';
}

export interface RotationProgress {
  /** Rows handled by this run (re-wrapped or failed). */
  done: number;
  /** Rows not under the target KEK when the run started (grows if more turn up). */
  total: number;
  rewrapped: number;
  failed: number;
}

export interface FailedKey {
  /** A key row's id, or `payload_keys/<id>` for a payload key. */
  id: string;
  kekId: string;
  /** Error name and message: KEK ids and reasons only, never key material. */
  reason: string;
}

export interface RotationResult {
  /** The KEK every row was moved to. */
  kekId: string;
  rewrapped: number;
  /** Rows that were under the target KEK without this run touching them. */
  alreadyCurrent: number;
  failed: FailedKey[];
  /** Payload key rows (payload_keys) this run re-wrapped. */
  payloadKeysRewrapped: number;
  /** Rows per KEK when the run ended. */
  byKek: Map<string, number>;
}

export interface RotateKekOptions {
  db: Db;
  km: KeyManager;
  /** Rows per transaction. Default 100. */
  batchSize?: number;
  /** Wait between batches, to go easy on the KMS and the database. Default 0. */
  pauseMs?: number;
  /**
   * The run does not end before this many ms after its start: a new active KEK takes processes a moment
   * to notice, and a row they sealed under the old one in that moment is caught by a last walk.
   */
  settleMs?: number;
  /** How long to wait for another run's lock before refusing, in ms. Default 5000. */
  lockWaitMs?: number;
  onProgress?(progress: RotationProgress): void;
}

/** "Name: message", with the cause's when there is one (the KEK that refused, and why). */
function describeFailure(err: unknown): string {
  const e = err as Error;
  const cause = e.cause instanceof Error ? ` (${e.cause.name}: ${e.cause.message})` : '';
  return `${e.name}: ${e.message}${cause}`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function sum(counts: Map<string, number>, except?: string): number {
  let n = 0;
  for (const [kek, count] of counts) if (kek !== except) n += count;
  return n;
}

export async function rotateKek(opts: RotateKekOptions): Promise<RotationResult> {
  const { db, km } = opts;
  const batchSize = opts.batchSize ?? 100;
  const target = km.kekId;
  const started = Date.now();
  const lock = await db.connect();
  try {
    // A run killed a moment ago may still hold the lock until its server session notices: wait a little.
    for (let waited = 0; ; waited += 250) {
      const { rows } = await lock.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [
        ROTATION_LOCK_ID,
      ]);
      if (rows[0]?.locked) break;
      if (waited >= (opts.lockWaitMs ?? 5000))
        throw new RotationRefusedError('another rotate-kek is running against this database');
      await sleep(250);
    }
    const failed = new Map<string, FailedKey>();
    const progress: RotationProgress = {
      done: 0,
      total: sum(await countKeysByKek(db), target),
      rewrapped: 0,
      failed: 0,
    };
    opts.onProgress?.({ ...progress });

    /** The row's DEK wrapped under the target KEK; refuses if the active KEK moved on during the run. */
    const rewrapUnder = async (row: Parameters<typeof rewrapSecret>[1]) => {
      const rewrapped = await rewrapSecret(km, row);
      if (rewrapped.kekId !== target) {
        throw new RotationRefusedError(
          `the active KEK changed from ${target} to ${rewrapped.kekId} during the run; run rotate-kek again`,
        );
      }
      return rewrapped;
    };

    const rewrapBatch = (afterId: string | null) =>
      inTransaction(db, async (tx) => {
        const batch = await lockKeysNotUnder(tx, target, afterId, batchSize);
        let moved = 0;
        for (const row of batch) {
          try {
            const rewrapped = await rewrapUnder(row);
            await updateWrappedDek(tx, row.id, rewrapped.wrappedDek, rewrapped.kekId, row.kekId);
            moved++;
            failed.delete(row.id);
          } catch (err) {
            // An unreachable KMS fails the whole batch (rolled back) and the run: a rerun resumes.
            if (err instanceof KeyManagerUnavailableError || err instanceof RotationRefusedError) throw err;
            failed.set(row.id, { id: row.id, kekId: row.kekId, reason: describeFailure(err) });
          }
        }
        return { moved, lastId: batch.at(-1)?.id ?? null, full: batch.length === batchSize };
      });

    // The payload key is one row (or a few): all of them in one transaction, at the start of every walk.
    let payloadKeysRewrapped = 0;
    const rewrapPayloadKeys = () =>
      inTransaction(db, async (tx) => {
        let moved = 0;
        for (const row of await lockPayloadKeysNotUnder(tx, target)) {
          const id = `payload_keys/${row.id}`;
          try {
            const rewrapped = await rewrapUnder(row);
            await updatePayloadKeyWrappedDek(tx, row.id, rewrapped.wrappedDek, rewrapped.kekId, row.kekId);
            moved++;
            failed.delete(id);
          } catch (err) {
            if (err instanceof KeyManagerUnavailableError || err instanceof RotationRefusedError) throw err;
            failed.set(id, { id, kekId: row.kekId, reason: describeFailure(err) });
          }
        }
        return moved;
      });

    // Walks until one finds nothing left to move, and not before settleMs.
    for (;;) {
      const payloadMoved = await rewrapPayloadKeys();
      payloadKeysRewrapped += payloadMoved;
      let walkMoved = payloadMoved;
      for (let afterId: string | null = null; ; ) {
        const { moved, lastId, full } = await rewrapBatch(afterId);
        walkMoved += moved;
        progress.rewrapped += moved;
        progress.failed = failed.size;
        progress.done = progress.rewrapped + progress.failed;
        progress.total = Math.max(progress.total, progress.done);
        opts.onProgress?.({ ...progress });
        if (!full) break;
        afterId = lastId;
        if (opts.pauseMs) await sleep(opts.pauseMs);
      }
      const settleLeft = (opts.settleMs ?? 0) - (Date.now() - started);
      if (walkMoved === 0 && settleLeft <= 0) break;
      if (walkMoved === 0) await sleep(settleLeft);
    }

    const byKek = await countKeysByKek(db);
    return {
      kekId: target,
      rewrapped: progress.rewrapped,
      alreadyCurrent: (byKek.get(target) ?? 0) - progress.rewrapped,
      failed: [...failed.values()],
      payloadKeysRewrapped,
      byKek,
    };
  } finally {
    await lock.query('SELECT pg_advisory_unlock($1)', [ROTATION_LOCK_ID]).catch(() => undefined);
    lock.release();
  }
}
