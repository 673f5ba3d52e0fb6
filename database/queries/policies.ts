import type { Queryable } from '../pool.js';

/**
 * What a policy allows. Only grows, with optional fields, so every stored row stays valid; a field that is
 * absent imposes no limit (or, for the per-NIP rights, falls back to `encrypt`/`decrypt`).
 */
export interface PolicyPermissions {
  /** Kinds `sign_event` may sign, or "all". */
  allowed_kinds: number[] | 'all';
  encrypt: boolean;
  decrypt: boolean;
  /** Per-NIP rights; each overrides `encrypt` or `decrypt` for its NIP when present. */
  nip04_encrypt?: boolean;
  nip04_decrypt?: boolean;
  nip44_encrypt?: boolean;
  nip44_decrypt?: boolean;
  /** Largest UTF-8 size of a signed event's content or of a plaintext to encrypt, in bytes. */
  max_content_bytes?: number;
  /** An authorization under this policy expires this long after it was made. */
  expires_after_seconds?: number;
  /** Permitted key operations (sign, encrypt, decrypt) one authorization may make, over its life. */
  max_uses?: number;
  /** Ask the user (NIP-46 auth_url, HTTP 403 with an approval URL) for what is not allowed outright. */
  ask?: boolean;
}

export interface Policy {
  slug: string;
  display_name: string;
  description: string;
  permissions: PolicyPermissions;
}

/** A policy someone made: owned by a user (or a team), visible and usable only by its owner. */
export interface CustomPolicy extends Policy {
  owner_user_id: string | null;
  owner_team_id: string | null;
  created_at: Date;
  updated_at: Date;
}

const BUILT_IN = 'owner_user_id IS NULL AND owner_team_id IS NULL';
/** Built-ins, and the user's own when $2 is a user id. */
const VISIBLE = `((${BUILT_IN}) OR owner_user_id = $2::uuid)`;
const ORDER = `ORDER BY (${BUILT_IN}) DESC,
  array_position(ARRAY['social','readonly','messaging','wallet','full'], slug), created_at, slug`;
const COLUMNS = 'slug, display_name, description, permissions';
const CUSTOM_COLUMNS = `${COLUMNS}, owner_user_id, owner_team_id, created_at, updated_at`;

/** The built-in policies, then (when `userId` is given) the user's own. */
export async function listPolicies(db: Queryable, userId?: string): Promise<Policy[]> {
  const { rows } = await db.query<Policy>(
    `SELECT ${COLUMNS} FROM policies WHERE ${VISIBLE.replace('$2', '$1')} ${ORDER}`,
    [userId ?? null],
  );
  return rows;
}

/** A policy by slug if `userId` may use it (a built-in, or their own); without `userId`, built-ins only. */
export async function findPolicy(db: Queryable, slug: string, userId?: string): Promise<Policy | undefined> {
  const { rows } = await db.query<Policy>(`SELECT ${COLUMNS} FROM policies WHERE slug = $1 AND ${VISIBLE}`, [
    slug,
    userId ?? null,
  ]);
  return rows[0];
}

/** Who a custom policy belongs to: a user, or a team (whose admins manage it). */
export type PolicyOwner = { userId: string } | { teamId: string };

/** The owner's column (a constant, never user input) and id. */
function ownedBy(owner: PolicyOwner): [column: 'owner_user_id' | 'owner_team_id', id: string] {
  return 'userId' in owner ? ['owner_user_id', owner.userId] : ['owner_team_id', owner.teamId];
}

export async function listOwnedPolicies(db: Queryable, owner: PolicyOwner): Promise<CustomPolicy[]> {
  const [column, id] = ownedBy(owner);
  const { rows } = await db.query<CustomPolicy>(
    `SELECT ${CUSTOM_COLUMNS} FROM policies WHERE ${column} = $1 ORDER BY created_at, slug`,
    [id],
  );
  return rows;
}

export async function findOwnedPolicy(
  db: Queryable,
  owner: PolicyOwner,
  slug: string,
): Promise<CustomPolicy | undefined> {
  const [column, id] = ownedBy(owner);
  const { rows } = await db.query<CustomPolicy>(
    `SELECT ${CUSTOM_COLUMNS} FROM policies WHERE slug = $1 AND ${column} = $2`,
    [slug, id],
  );
  return rows[0];
}

/** Advisory lock namespaces (first key of the two-key form): one user's, or one team's, policies. */
const POLICIES_LOCK = { owner_user_id: 0x6b66_706f /* "kfpo" */, owner_team_id: 0x6b66_7470 /* "kftp" */ };

/** Serialises policy creations for one owner until the transaction ends, so the count and insert are one step. */
export async function lockOwnedPolicies(tx: Queryable, owner: PolicyOwner): Promise<void> {
  const [column, id] = ownedBy(owner);
  await tx.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [POLICIES_LOCK[column], id]);
}

export async function countOwnedPolicies(db: Queryable, owner: PolicyOwner): Promise<number> {
  const [column, id] = ownedBy(owner);
  const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM policies WHERE ${column} = $1`, [id]);
  return rows[0]!.n;
}

export interface PolicyFields {
  display_name: string;
  description: string;
  permissions: PolicyPermissions;
}

export async function insertOwnedPolicy(
  db: Queryable,
  owner: PolicyOwner,
  slug: string,
  p: PolicyFields,
): Promise<CustomPolicy> {
  const [column, id] = ownedBy(owner);
  const { rows } = await db.query<CustomPolicy>(
    `INSERT INTO policies (slug, display_name, description, permissions, ${column})
     VALUES ($1, $2, $3, $4, $5) RETURNING ${CUSTOM_COLUMNS}`,
    [slug, p.display_name, p.description, JSON.stringify(p.permissions), id],
  );
  return rows[0]!;
}

/** Replaces one of the owner's policies; undefined when it is not theirs. */
export async function updateOwnedPolicy(
  db: Queryable,
  owner: PolicyOwner,
  slug: string,
  p: PolicyFields,
): Promise<CustomPolicy | undefined> {
  const [column, id] = ownedBy(owner);
  const { rows } = await db.query<CustomPolicy>(
    `UPDATE policies SET display_name = $3, description = $4, permissions = $5, updated_at = now()
     WHERE slug = $1 AND ${column} = $2 RETURNING ${CUSTOM_COLUMNS}`,
    [slug, id, p.display_name, p.description, JSON.stringify(p.permissions)],
  );
  return rows[0];
}

/** Unrevoked authorizations under a policy: the ones whose cached copies an edit must evict. */
export async function authorizationsUsingPolicy(db: Queryable, slug: string): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    'SELECT id FROM authorizations WHERE policy_slug = $1 AND revoked_at IS NULL',
    [slug],
  );
  return rows.map((r) => r.id);
}

/** The built-in that ended authorizations and spent codes fall back to when their custom policy is deleted. */
const FALLBACK_POLICY = 'readonly';

export type DeleteOutcome = 'deleted' | 'not_found' | 'in_use';

/**
 * Deletes one of the owner's policies unless a live authorization or an unspent code uses it (call in a
 * transaction). Ended ones (revoked or expired) and spent codes are moved to the narrowest built-in first:
 * they grant nothing any more, and they must not keep the row alive.
 */
export async function deleteOwnedPolicy(tx: Queryable, owner: PolicyOwner, slug: string): Promise<DeleteOutcome> {
  const [column, id] = ownedBy(owner);
  const { rows } = await tx.query<{ slug: string }>(
    `SELECT slug FROM policies WHERE slug = $1 AND ${column} = $2 FOR UPDATE`,
    [slug, id],
  );
  if (rows.length === 0) return 'not_found';
  const live = await tx.query(
    `SELECT 1 FROM authorizations WHERE policy_slug = $1 AND revoked_at IS NULL
       AND (expires_at IS NULL OR expires_at > now())
     UNION ALL SELECT 1 FROM oauth_codes WHERE policy_slug = $1 AND used_at IS NULL AND expires_at > now()
     LIMIT 1`,
    [slug],
  );
  if (live.rows.length > 0) return 'in_use';
  await tx.query('UPDATE authorizations SET policy_slug = $2 WHERE policy_slug = $1', [slug, FALLBACK_POLICY]);
  await tx.query('UPDATE oauth_codes SET policy_slug = $2 WHERE policy_slug = $1', [slug, FALLBACK_POLICY]);
  await tx.query('DELETE FROM policies WHERE slug = $1', [slug]);
  return 'deleted';
}
