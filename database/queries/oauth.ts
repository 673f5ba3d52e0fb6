import type { Queryable } from '../pool.js';

export interface OAuthCodeRow {
  /** Null for a bring-your-own-key registration: the account is made at token exchange. */
  userId: string | null;
  clientId: string;
  redirectUri: string;
  policySlug: string;
  codeChallenge: string | null;
  codeChallengeMethod: string | null;
  expiresAt: Date;
  byokPubkey?: string | null;
  pendingEmail?: string | null;
  pendingPasswordHash?: string | null;
  pollStateHash?: Buffer | null;
}

export async function insertCode(db: Queryable, codeHash: Buffer, c: OAuthCodeRow): Promise<void> {
  await db.query(
    `INSERT INTO oauth_codes (code_hash, user_id, client_id, redirect_uri, policy_slug, code_challenge,
       code_challenge_method, expires_at, byok_pubkey, pending_email, pending_password_hash, poll_state_hash)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
    [
      codeHash,
      c.userId,
      c.clientId,
      c.redirectUri,
      c.policySlug,
      c.codeChallenge,
      c.codeChallengeMethod,
      c.expiresAt,
      c.byokPubkey ?? null,
      c.pendingEmail ?? null,
      c.pendingPasswordHash ?? null,
      c.pollStateHash ?? null,
    ],
  );
}

/**
 * Ends the newest unused, unexpired code waiting for this poll state and returns it (the caller issues a
 * fresh copy to the poller); undefined while none waits.
 */
export async function takePolledCode(db: Queryable, pollStateHash: Buffer): Promise<OAuthCodeRow | undefined> {
  const { rows } = await db.query<OAuthCodeRow>(
    `UPDATE oauth_codes SET used_at = now()
     WHERE code_hash = (SELECT code_hash FROM oauth_codes
       WHERE poll_state_hash = $1 AND used_at IS NULL AND expires_at > now()
       ORDER BY created_at DESC LIMIT 1 FOR UPDATE SKIP LOCKED)
       AND used_at IS NULL
     RETURNING user_id AS "userId", client_id AS "clientId", redirect_uri AS "redirectUri", policy_slug AS "policySlug",
       code_challenge AS "codeChallenge", code_challenge_method AS "codeChallengeMethod", expires_at AS "expiresAt",
       byok_pubkey AS "byokPubkey", pending_email AS "pendingEmail", pending_password_hash AS "pendingPasswordHash"`,
    [pollStateHash],
  );
  return rows[0];
}

/** Marks a code used and returns it, only if it was unused and unexpired: a code works once. */
export async function consumeCode(db: Queryable, codeHash: Buffer): Promise<OAuthCodeRow | undefined> {
  const { rows } = await db.query<OAuthCodeRow>(
    `UPDATE oauth_codes SET used_at = now()
     WHERE code_hash = $1 AND used_at IS NULL AND expires_at > now()
     RETURNING user_id AS "userId", client_id AS "clientId", redirect_uri AS "redirectUri", policy_slug AS "policySlug",
       code_challenge AS "codeChallenge", code_challenge_method AS "codeChallengeMethod", expires_at AS "expiresAt",
       byok_pubkey AS "byokPubkey", pending_email AS "pendingEmail", pending_password_hash AS "pendingPasswordHash"`,
    [codeHash],
  );
  return rows[0];
}

export interface TokenPair {
  accessHash: Buffer;
  refreshHash: Buffer;
  authorizationId: string;
  familyId: string;
  accessExpiresAt: Date;
  refreshExpiresAt: Date;
}

export async function insertTokens(db: Queryable, t: TokenPair): Promise<void> {
  await db.query(
    `INSERT INTO oauth_tokens (access_hash, refresh_hash, authorization_id, family_id, access_expires_at, refresh_expires_at)
     VALUES ($1, $2, $3, $4, $5, $6)`,
    [t.accessHash, t.refreshHash, t.authorizationId, t.familyId, t.accessExpiresAt, t.refreshExpiresAt],
  );
}

export interface RefreshLookup {
  authorizationId: string;
  familyId: string;
  accessHash: Buffer;
  /** Already rotated: presenting it again is a replay. */
  rotated: boolean;
  revoked: boolean;
  expired: boolean;
  authorizationRevoked: boolean;
}

/** Finds a refresh token and locks its row (call inside a transaction). */
export async function findRefreshForUpdate(db: Queryable, refreshHash: Buffer): Promise<RefreshLookup | undefined> {
  const { rows } = await db.query<RefreshLookup>(
    `SELECT t.authorization_id AS "authorizationId", t.family_id AS "familyId", t.access_hash AS "accessHash",
       t.rotated_at IS NOT NULL AS rotated, t.revoked_at IS NOT NULL AS revoked,
       t.refresh_expires_at <= now() AS expired, a.revoked_at IS NOT NULL AS "authorizationRevoked"
     FROM oauth_tokens t JOIN authorizations a ON a.id = t.authorization_id
     WHERE t.refresh_hash = $1 FOR UPDATE OF t`,
    [refreshHash],
  );
  return rows[0];
}

/** Ends a token pair after rotation: its access token stops working too. */
export async function markRotated(db: Queryable, accessHash: Buffer): Promise<void> {
  await db.query('UPDATE oauth_tokens SET rotated_at = now(), revoked_at = now() WHERE access_hash = $1', [accessHash]);
}

/** Kills every token of a family (a replayed refresh token). Returns the access hashes ended. */
export async function revokeFamily(db: Queryable, familyId: string): Promise<Buffer[]> {
  const { rows } = await db.query<{ access_hash: Buffer }>(
    'UPDATE oauth_tokens SET revoked_at = COALESCE(revoked_at, now()) WHERE family_id = $1 RETURNING access_hash',
    [familyId],
  );
  return rows.map((r) => r.access_hash);
}
