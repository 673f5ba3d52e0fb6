import type { Queryable } from '../pool.js';

export interface PolicyPermissions {
  /** Kinds `sign_event` may sign, or "all". */
  allowed_kinds: number[] | 'all';
  encrypt: boolean;
  decrypt: boolean;
  /** Ask the user (NIP-46 auth_url, HTTP 403 with an approval URL) for what is not allowed outright. */
  ask?: boolean;
}

export interface Policy {
  slug: string;
  display_name: string;
  description: string;
  permissions: PolicyPermissions;
}

export async function listPolicies(db: Queryable): Promise<Policy[]> {
  const { rows } = await db.query<Policy>(
    `SELECT slug, display_name, description, permissions FROM policies
     ORDER BY array_position(ARRAY['social','readonly','messaging','wallet','full'], slug), slug`,
  );
  return rows;
}

export async function findPolicy(db: Queryable, slug: string): Promise<Policy | undefined> {
  const { rows } = await db.query<Policy>(
    'SELECT slug, display_name, description, permissions FROM policies WHERE slug = $1',
    [slug],
  );
  return rows[0];
}
