import type { Queryable } from '../pool.js';

export interface UserRow {
  id: string;
  email: string;
  passwordHash: string;
  pubkey: string;
  keyId: string;
  createdAt: Date;
  /** When the current address was confirmed; null while it is not. */
  emailVerifiedAt: Date | null;
}

const COLUMNS = `id, email, password_hash AS "passwordHash", pubkey, key_id AS "keyId", created_at AS "createdAt", email_verified_at AS "emailVerifiedAt"`;

export async function insertUser(
  db: Queryable,
  u: Omit<UserRow, 'createdAt' | 'keyId' | 'emailVerifiedAt'>,
): Promise<void> {
  await db.query('INSERT INTO users (id, email, password_hash, pubkey) VALUES ($1, $2, $3, $4)', [
    u.id,
    u.email,
    u.passwordHash,
    u.pubkey,
  ]);
}

export async function setUserKey(db: Queryable, userId: string, keyId: string): Promise<void> {
  await db.query('UPDATE users SET key_id = $2, updated_at = now() WHERE id = $1', [userId, keyId]);
}

export async function setPasswordHash(db: Queryable, userId: string, passwordHash: string): Promise<void> {
  await db.query('UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1', [userId, passwordHash]);
}

export async function findUserByEmail(db: Queryable, email: string): Promise<UserRow | undefined> {
  const { rows } = await db.query<UserRow>(`SELECT ${COLUMNS} FROM users WHERE lower(email) = lower($1)`, [email]);
  return rows[0];
}

export async function findUserById(db: Queryable, id: string): Promise<UserRow | undefined> {
  const { rows } = await db.query<UserRow>(`SELECT ${COLUMNS} FROM users WHERE id = $1`, [id]);
  return rows[0];
}

/** Marks the address confirmed, only while it is still the account's address (case aside). */
export async function markEmailVerified(db: Queryable, userId: string, email: string): Promise<boolean> {
  const { rowCount } = await db.query(
    'UPDATE users SET email_verified_at = now(), updated_at = now() WHERE id = $1 AND lower(email) = lower($2) AND email_verified_at IS NULL',
    [userId, email],
  );
  return (rowCount ?? 0) > 0;
}

/** A new address, not yet confirmed. */
export async function setUserEmail(db: Queryable, userId: string, email: string): Promise<void> {
  await db.query('UPDATE users SET email = $2, email_verified_at = NULL, updated_at = now() WHERE id = $1', [
    userId,
    email,
  ]);
}
