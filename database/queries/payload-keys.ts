import type { SealedSecret } from './sealed-secret.js';
import type { Queryable } from '../pool.js';

export interface PayloadKeyRow extends SealedSecret {
  id: string;
}

const COLUMNS = `id, ciphertext, nonce, wrapped_dek AS "wrappedDek", kek_id AS "kekId"`;

/** Inserts the row unless one with its id exists (then the existing one stands: read it back). */
export async function insertPayloadKeyIfAbsent(db: Queryable, row: PayloadKeyRow): Promise<void> {
  await db.query(
    `INSERT INTO payload_keys (id, ciphertext, nonce, wrapped_dek, kek_id) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (id) DO NOTHING`,
    [row.id, row.ciphertext, row.nonce, row.wrappedDek, row.kekId],
  );
}

export async function findPayloadKey(db: Queryable, id: string): Promise<PayloadKeyRow | undefined> {
  const { rows } = await db.query<PayloadKeyRow>(`SELECT ${COLUMNS} FROM payload_keys WHERE id = $1`, [id]);
  return rows[0];
}

/** KEK rotation: the payload keys whose DEK is not wrapped under `kekId`, locked until the transaction ends. */
export async function lockPayloadKeysNotUnder(db: Queryable, kekId: string): Promise<PayloadKeyRow[]> {
  const { rows } = await db.query<PayloadKeyRow>(
    `SELECT ${COLUMNS} FROM payload_keys WHERE kek_id <> $1 ORDER BY id FOR UPDATE`,
    [kekId],
  );
  return rows;
}

export async function updatePayloadKeyWrappedDek(
  db: Queryable,
  id: string,
  wrappedDek: Buffer,
  kekId: string,
  oldKekId: string,
): Promise<boolean> {
  const { rowCount } = await db.query(
    'UPDATE payload_keys SET wrapped_dek = $2, kek_id = $3 WHERE id = $1 AND kek_id = $4',
    [id, wrappedDek, kekId, oldKekId],
  );
  return rowCount === 1;
}
