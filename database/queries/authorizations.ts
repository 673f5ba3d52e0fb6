import type { Queryable } from '../pool.js';
import type { PolicyPermissions } from './policies.js';

export interface AuthorizationRow {
  id: string;
  userId: string;
  applicationName: string;
  policySlug: string;
  bunkerPubkey: string;
  bunkerKeyId: string;
  clientPubkey: string | null;
  clientId: string | null;
  redirectOrigin: string | null;
  relays: string[];
  expiresAt: Date | null;
  createdAt: Date;
  lastActivity: Date | null;
  activityCount: number;
  revokedAt: Date | null;
}

export interface NewAuthorization {
  id: string;
  userId: string;
  applicationName: string;
  policySlug: string;
  bunkerPubkey: string;
  bunkerKeyId: string;
  secretHash: Buffer;
  clientId?: string | null;
  clientPubkey?: string | null;
  redirectOrigin?: string | null;
  relays: string[];
  expiresAt?: Date | null;
  /** A team key the authorization signs with instead of the user's own. */
  signingKeyId?: string | null;
}

/** What a request needs to act under an authorization: the grant, its policy and the key it signs with. */
export interface ActingAuthorization {
  id: string;
  userId: string;
  /** The key it signs with: the user's own, or the team key the authorization names (signing_key_id). */
  userPubkey: string;
  userKeyId: string;
  policySlug: string;
  permissions: PolicyPermissions;
  /** Kinds the user approved "always" for this authorization. */
  grantedKinds: number[];
  revokedAt: Date | null;
  expiresAt: Date | null;
  /** The token itself was revoked or rotated away (the authorization may still stand). */
  tokenRevoked: boolean;
  /** When the access token stops working; a cached lookup is never served past it. */
  accessExpiresAt?: Date;
}

/**
 * An authorization's expiry as both doors enforce it: its own, or its policy's lifetime counted from when it
 * was made, whichever comes first (LEAST ignores NULLs). Needs `a` and `p` (its policy) in the query.
 */
export const EFFECTIVE_EXPIRY = `LEAST(a.expires_at,
  a.created_at + make_interval(secs => (p.permissions->>'expires_after_seconds')::double precision))`;

const COLUMNS = `a.id, a.user_id AS "userId", a.application_name AS "applicationName", a.policy_slug AS "policySlug",
  a.bunker_pubkey AS "bunkerPubkey", a.bunker_key_id AS "bunkerKeyId", a.client_pubkey AS "clientPubkey",
  a.client_id AS "clientId", a.redirect_origin AS "redirectOrigin", a.relays, ${EFFECTIVE_EXPIRY} AS "expiresAt",
  a.created_at AS "createdAt", a.last_activity AS "lastActivity", a.activity_count AS "activityCount",
  a.revoked_at AS "revokedAt"`;

export async function insertAuthorization(db: Queryable, a: NewAuthorization): Promise<void> {
  await db.query(
    `INSERT INTO authorizations (id, user_id, application_name, policy_slug, bunker_pubkey, bunker_key_id, secret_hash,
       client_id, client_pubkey, redirect_origin, relays, expires_at, signing_key_id)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
    [
      a.id,
      a.userId,
      a.applicationName,
      a.policySlug,
      a.bunkerPubkey,
      a.bunkerKeyId,
      a.secretHash,
      a.clientId ?? null,
      a.clientPubkey ?? null,
      a.redirectOrigin ?? null,
      a.relays,
      a.expiresAt ?? null,
      a.signingKeyId ?? null,
    ],
  );
}

export async function listUserAuthorizations(db: Queryable, userId: string): Promise<AuthorizationRow[]> {
  const { rows } = await db.query<AuthorizationRow>(
    `SELECT ${COLUMNS} FROM authorizations a JOIN policies p ON p.slug = a.policy_slug
     WHERE a.user_id = $1 ORDER BY a.created_at DESC`,
    [userId],
  );
  return rows;
}

/**
 * Puts one of the user's unrevoked authorizations on their own key under another policy (one on a team key
 * is the team admins' to change); undefined when there is none such.
 */
export async function setAuthorizationPolicy(
  db: Queryable,
  userId: string,
  id: string,
  policySlug: string,
): Promise<{ id: string } | undefined> {
  const { rows } = await db.query<{ id: string }>(
    `UPDATE authorizations SET policy_slug = $3
     WHERE id = $2 AND user_id = $1 AND revoked_at IS NULL AND signing_key_id IS NULL RETURNING id`,
    [userId, id, policySlug],
  );
  return rows[0];
}

/** Revokes one of the user's authorizations, by id or by bunker pubkey. Returns its id, or undefined if not theirs. */
export async function revokeAuthorization(
  db: Queryable,
  userId: string,
  by: { id: string } | { bunkerPubkey: string },
): Promise<{ id: string; bunkerKeyId: string } | undefined> {
  const [column, value] = 'id' in by ? ['id', by.id] : ['bunker_pubkey', by.bunkerPubkey];
  const { rows } = await db.query<{ id: string; bunkerKeyId: string }>(
    `UPDATE authorizations SET revoked_at = COALESCE(revoked_at, now())
     WHERE user_id = $1 AND ${column} = $2 RETURNING id, bunker_key_id AS "bunkerKeyId"`,
    [userId, value],
  );
  return rows[0];
}

// The signing key is joined in the same read: a team key costs no extra round trip, the user's key none more.
const ACTING = `a.id, a.user_id AS "userId", COALESCE(sk.pubkey, u.pubkey) AS "userPubkey",
  COALESCE(a.signing_key_id, u.key_id) AS "userKeyId",
  a.policy_slug AS "policySlug", p.permissions, a.granted_kinds AS "grantedKinds", a.revoked_at AS "revokedAt",
  ${EFFECTIVE_EXPIRY} AS "expiresAt",
  t.revoked_at IS NOT NULL AS "tokenRevoked", t.access_expires_at AS "accessExpiresAt"`;

const FIND_ACTING = {
  name: 'keyfarm-find-acting',
  text: `SELECT ${ACTING} FROM oauth_tokens t
       JOIN authorizations a ON a.id = t.authorization_id
       JOIN users u ON u.id = a.user_id
       JOIN policies p ON p.slug = a.policy_slug
       LEFT JOIN keys sk ON sk.id = a.signing_key_id
     WHERE t.access_hash = $1 AND t.access_expires_at > now()`,
};

/**
 * The authorization behind an unexpired access token, revoked or not (the caller tells 401 from 403). A
 * named statement: a new token's first request waits for it, so each connection plans the join once.
 */
export async function findActingByAccessHash(
  db: Queryable,
  accessHash: Buffer,
): Promise<ActingAuthorization | undefined> {
  const { rows } = await db.query<ActingAuthorization>({ ...FIND_ACTING, values: [accessHash] });
  return rows[0];
}

/** Adds counted activity to authorizations in one statement. */
export async function addActivity(db: Queryable, counts: Map<string, { count: number; last: Date }>): Promise<void> {
  if (counts.size === 0) return;
  const ids = [...counts.keys()];
  await db.query(
    `UPDATE authorizations a SET activity_count = a.activity_count + c.n,
       last_activity = GREATEST(COALESCE(a.last_activity, c.last), c.last)
     FROM unnest($1::uuid[], $2::int[], $3::timestamptz[]) AS c(id, n, last) WHERE a.id = c.id`,
    [ids, ids.map((id) => counts.get(id)!.count), ids.map((id) => counts.get(id)!.last)],
  );
}

/** Advisory lock namespaces (first key of the two-key form) for the creation limits. */
const USER_LOCK = 0x6b66_6175; // "kfau": one user's authorizations
const RELAY_SLOTS_LOCK = 0x6b66_7273; // "kfrs": the farm's user-relay slots

const LIVE = `a.revoked_at IS NULL AND (a.expires_at IS NULL OR a.expires_at > now())`;

/** Serialises creations for one user until the transaction ends (the caller's `tx`). */
export async function lockUserAuthorizations(tx: Queryable, userId: string): Promise<void> {
  await tx.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [USER_LOCK, userId]);
}

/** Serialises claims on the farm's user-relay slots until the transaction ends. Take after lockUserAuthorizations. */
export async function lockRelaySlots(tx: Queryable): Promise<void> {
  await tx.query('SELECT pg_advisory_xact_lock($1, 0)', [RELAY_SLOTS_LOCK]);
}

export async function countLiveAuthorizations(db: Queryable, userId: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM authorizations a WHERE a.user_id = $1 AND ${LIVE}`,
    [userId],
  );
  return rows[0]!.n;
}

/**
 * The distinct relays of live authorizations that are not service relays (`serviceRelays`, in every
 * spelling they may be stored in), among `candidates` when given; for one user when `userId` is given.
 */
export async function liveUserRelays(
  db: Queryable,
  serviceRelays: string[],
  opts: { userId?: string; among?: string[] } = {},
): Promise<string[]> {
  const { rows } = await db.query<{ relay: string }>(
    `SELECT DISTINCT r.relay FROM authorizations a, unnest(a.relays) AS r(relay)
     WHERE ${LIVE} AND r.relay <> ALL($1::text[])
       AND ($2::uuid IS NULL OR a.user_id = $2) AND ($3::text[] IS NULL OR r.relay = ANY($3::text[]))`,
    [serviceRelays, opts.userId ?? null, opts.among ?? null],
  );
  return rows.map((r) => r.relay);
}

/** How many distinct non-service relays live authorizations name (for one user when `userId` is given). */
export async function countLiveUserRelays(db: Queryable, serviceRelays: string[], userId?: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(DISTINCT r.relay)::int AS n FROM authorizations a, unnest(a.relays) AS r(relay)
     WHERE ${LIVE} AND r.relay <> ALL($1::text[]) AND ($2::uuid IS NULL OR a.user_id = $2)`,
    [serviceRelays, userId ?? null],
  );
  return rows[0]!.n;
}

/** A live authorization of one app (client_id and redirect origin) for one user. */
export interface AppAuthorization {
  id: string;
  bunkerPubkey: string;
  relays: string[];
  policySlug: string;
}

/** The user's live authorization of this app, if any (call under lockUserAuthorizations). */
export async function findLiveAppAuthorization(
  db: Queryable,
  userId: string,
  clientId: string,
  redirectOrigin: string,
): Promise<AppAuthorization | undefined> {
  const { rows } = await db.query<AppAuthorization>(
    `SELECT a.id, a.bunker_pubkey AS "bunkerPubkey", a.relays, a.policy_slug AS "policySlug" FROM authorizations a
     WHERE a.user_id = $1 AND a.client_id = $2 AND a.redirect_origin = $3 AND ${LIVE}
     ORDER BY a.created_at DESC LIMIT 1`,
    [userId, clientId, redirectOrigin],
  );
  return rows[0];
}

/**
 * Re-authorizes an app on its existing authorization: the policy the user granted now, a new connect secret,
 * and no bound client, so the app's new connection can bind (an older one of the same app stops).
 */
export async function reauthorizeApp(db: Queryable, id: string, policySlug: string, secretHash: Buffer): Promise<void> {
  await db.query('UPDATE authorizations SET policy_slug = $2, secret_hash = $3, client_pubkey = NULL WHERE id = $1', [
    id,
    policySlug,
    secretHash,
  ]);
}

/** Sets the authorization's handle (its hash); the expiry stays unless a new one is given. */
export async function setAuthorizationHandle(
  db: Queryable,
  id: string,
  handleHash: Buffer,
  expiresAt?: Date,
): Promise<void> {
  await db.query(
    'UPDATE authorizations SET handle_hash = $2, handle_expires_at = COALESCE($3, handle_expires_at) WHERE id = $1',
    [id, handleHash, expiresAt ?? null],
  );
}

/** The live authorization a handle names, only for this user, app and redirect origin, while the handle lasts. */
export async function findByHandle(
  db: Queryable,
  handleHash: Buffer,
  app: { userId: string; clientId: string; redirectOrigin: string },
): Promise<AppAuthorization | undefined> {
  const { rows } = await db.query<AppAuthorization>(
    `SELECT a.id, a.bunker_pubkey AS "bunkerPubkey", a.relays, a.policy_slug AS "policySlug" FROM authorizations a
     WHERE a.handle_hash = $1 AND a.user_id = $2 AND a.client_id = $3 AND a.redirect_origin = $4
       AND a.handle_expires_at > now() AND ${LIVE}`,
    [handleHash, app.userId, app.clientId, app.redirectOrigin],
  );
  return rows[0];
}
