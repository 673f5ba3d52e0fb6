import type { SealedSecret } from './sealed-secret.js';
import type { Queryable } from '../pool.js';

/** A team holds several keys (each named); a user and a bunker one each. */
export type KeyOwnerKind = 'user' | 'bunker' | 'team';

export interface KeyRow extends SealedSecret {
  id: string;
  ownerKind: KeyOwnerKind;
  ownerId: string;
  pubkey: string;
  /** A team key's name; null for the others. */
  name?: string | null;
}

const COLUMNS = `id, owner_kind AS "ownerKind", owner_id AS "ownerId", pubkey, ciphertext, nonce,
  wrapped_dek AS "wrappedDek", kek_id AS "kekId"`;

export async function insertKey(db: Queryable, row: KeyRow): Promise<void> {
  await db.query(
    `INSERT INTO keys (id, owner_kind, owner_id, pubkey, ciphertext, nonce, wrapped_dek, kek_id, name)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
    [
      row.id,
      row.ownerKind,
      row.ownerId,
      row.pubkey,
      row.ciphertext,
      row.nonce,
      row.wrappedDek,
      row.kekId,
      row.name ?? null,
    ],
  );
}

const FIND_KEY = { name: 'keyfarm-find-key', text: `SELECT ${COLUMNS} FROM keys WHERE id = $1` };

/** A named statement: every cold key load runs it, so each connection parses and plans it once. */
export async function findKey(db: Queryable, id: string): Promise<KeyRow | undefined> {
  const { rows } = await db.query<KeyRow>({ ...FIND_KEY, values: [id] });
  return rows[0];
}

/**
 * KEK rotation's walk: up to `limit` keys whose DEK is not wrapped under `kekId`, after `afterId` in id
 * order, locked until the transaction ends.
 */
export async function lockKeysNotUnder(
  db: Queryable,
  kekId: string,
  afterId: string | null,
  limit: number,
): Promise<KeyRow[]> {
  const { rows } = await db.query<KeyRow>(
    `SELECT ${COLUMNS} FROM keys WHERE kek_id <> $1 AND ($2::uuid IS NULL OR id > $2::uuid) ORDER BY id LIMIT $3 FOR UPDATE`,
    [kekId, afterId, limit],
  );
  return rows;
}

/** How many keys each KEK wraps. */
export async function countKeysByKek(db: Queryable): Promise<Map<string, number>> {
  const { rows } = await db.query<{ kekId: string; n: number }>(
    'SELECT kek_id AS "kekId", count(*)::int AS n FROM keys GROUP BY kek_id',
  );
  return new Map(rows.map((r) => [r.kekId, r.n]));
}

export async function updateWrappedDek(
  db: Queryable,
  id: string,
  wrappedDek: Buffer,
  kekId: string,
  oldKekId: string,
): Promise<boolean> {
  const { rowCount } = await db.query('UPDATE keys SET wrapped_dek = $2, kek_id = $3 WHERE id = $1 AND kek_id = $4', [
    id,
    wrappedDek,
    kekId,
    oldKekId,
  ]);
  return rowCount === 1;
}
