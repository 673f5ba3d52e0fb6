import type { SealedSecret } from '../../shared/custody/envelope.js';
import type { Queryable } from '../pool.js';

export type KeyOwnerKind = 'user' | 'bunker';

export interface KeyRow extends SealedSecret {
  id: string;
  ownerKind: KeyOwnerKind;
  ownerId: string;
  pubkey: string;
}

const COLUMNS = `id, owner_kind AS "ownerKind", owner_id AS "ownerId", pubkey, ciphertext, nonce,
  wrapped_dek AS "wrappedDek", kek_id AS "kekId"`;

export async function insertKey(db: Queryable, row: KeyRow): Promise<void> {
  await db.query(
    `INSERT INTO keys (id, owner_kind, owner_id, pubkey, ciphertext, nonce, wrapped_dek, kek_id)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
    [row.id, row.ownerKind, row.ownerId, row.pubkey, row.ciphertext, row.nonce, row.wrappedDek, row.kekId],
  );
}

export async function findKey(db: Queryable, id: string): Promise<KeyRow | undefined> {
  const { rows } = await db.query<KeyRow>(`SELECT ${COLUMNS} FROM keys WHERE id = $1`, [id]);
  return rows[0];
}

/** Keys whose DEK is not wrapped under `kekId`, oldest first (KEK rotation walks these). */
export async function keysNotUnder(db: Queryable, kekId: string, limit: number): Promise<KeyRow[]> {
  const { rows } = await db.query<KeyRow>(
    `SELECT ${COLUMNS} FROM keys WHERE kek_id <> $1 ORDER BY created_at, id LIMIT $2`,
    [kekId, limit],
  );
  return rows;
}

export async function updateWrappedDek(db: Queryable, id: string, wrappedDek: Buffer, kekId: string, oldKekId: string): Promise<boolean> {
  const { rowCount } = await db.query(
    'UPDATE keys SET wrapped_dek = $2, kek_id = $3 WHERE id = $1 AND kek_id = $4',
    [id, wrappedDek, kekId, oldKekId],
  );
  return rowCount === 1;
}
