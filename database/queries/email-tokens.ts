// One-time tokens mailed to a user: email verification and password reset. Stored as SHA-256 hashes; a
// token is deleted when used, and a newer token of the same purpose deletes the user's older ones.
import type { Queryable } from '../pool.js';

export type EmailTokenPurpose = 'verify' | 'reset';

export interface SpentEmailToken {
  userId: string;
  email: string;
}

/** Stores a new token for `purpose`, replacing every older one of the user for that purpose. */
export async function replaceEmailToken(
  db: Queryable,
  t: { tokenHash: Buffer; userId: string; purpose: EmailTokenPurpose; email: string; expiresAt: Date },
): Promise<void> {
  await db.query(
    `WITH gone AS (DELETE FROM email_tokens WHERE user_id = $2 AND purpose = $3)
     INSERT INTO email_tokens (token_hash, user_id, purpose, email, expires_at) VALUES ($1, $2, $3, $4, $5)`,
    [t.tokenHash, t.userId, t.purpose, t.email, t.expiresAt],
  );
}

/**
 * Uses a token: deletes it and returns its user and address when it was live. One step, so two requests
 * with the same token cannot both succeed. An expired token is deleted too, and returns undefined.
 */
export async function spendEmailToken(
  db: Queryable,
  tokenHash: Buffer,
  purpose: EmailTokenPurpose,
): Promise<SpentEmailToken | undefined> {
  const { rows } = await db.query<{ user_id: string; email: string; live: boolean }>(
    'DELETE FROM email_tokens WHERE token_hash = $1 AND purpose = $2 RETURNING user_id, email, expires_at > now() AS live',
    [tokenHash, purpose],
  );
  const row = rows[0];
  return row?.live ? { userId: row.user_id, email: row.email } : undefined;
}

/** Whether a token is live, without using it (the reset form is shown only for a live link). */
export async function emailTokenIsLive(db: Queryable, tokenHash: Buffer, purpose: EmailTokenPurpose): Promise<boolean> {
  const { rowCount } = await db.query(
    'SELECT 1 FROM email_tokens WHERE token_hash = $1 AND purpose = $2 AND expires_at > now()',
    [tokenHash, purpose],
  );
  return (rowCount ?? 0) > 0;
}

/** Deletes the user's tokens of `purpose` (all purposes when omitted). */
export async function deleteEmailTokens(db: Queryable, userId: string, purpose?: EmailTokenPurpose): Promise<void> {
  await db.query('DELETE FROM email_tokens WHERE user_id = $1 AND ($2::text IS NULL OR purpose = $2)', [
    userId,
    purpose ?? null,
  ]);
}
