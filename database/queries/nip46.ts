// What the NIP-46 door needs from the authorizations table: the bunker pubkeys to listen for (with the
// relays to listen on and the user whose shard serves them), one authorization in full for the worker,
// and the first-client binding, done atomically so two clients racing with one secret cannot both win.
import type { Queryable } from '../pool.js';
import { EFFECTIVE_EXPIRY } from './authorizations.js';
import type { PolicyPermissions } from './policies.js';

/** How relay-ingest routes a request for one bunker pubkey. */
export interface BunkerRoute {
  authorizationId: string;
  bunkerPubkey: string;
  /** The pubkey it signs as (the user's, or its team key's): the shard is chosen by it. */
  userPubkey: string;
  relays: string[];
  revokedAt: Date | null;
  expiresAt: Date | null;
  /** The bound client; requests from any other key are limited before they are queued. */
  clientPubkey: string | null;
}

/** Everything the worker checks and uses to answer a request to one bunker. */
export interface Nip46Authorization {
  id: string;
  userId: string;
  bunkerPubkey: string;
  bunkerKeyId: string;
  secretHash: Buffer;
  clientPubkey: string | null;
  relays: string[];
  revokedAt: Date | null;
  expiresAt: Date | null;
  /** The key it signs with: the user's own, or the team key the authorization names. */
  userPubkey: string;
  userKeyId: string;
  permissions: PolicyPermissions;
  /** Kinds the user approved "always" for this authorization. */
  grantedKinds: number[];
}

const ROUTE = `a.id AS "authorizationId", a.bunker_pubkey AS "bunkerPubkey", COALESCE(sk.pubkey, u.pubkey) AS "userPubkey", a.relays,
  a.revoked_at AS "revokedAt", a.expires_at AS "expiresAt", a.client_pubkey AS "clientPubkey"`;

/**
 * Bunkers to listen for: live authorizations, and those revoked or expired within `graceSeconds`, so a
 * client still talking to a just-revoked bunker gets an error reply instead of silence. Oldest first: when
 * user relays are over the farm's cap, the ones admitted first keep their slots.
 */
export async function listBunkerRoutes(db: Queryable, graceSeconds: number): Promise<BunkerRoute[]> {
  const { rows } = await db.query<BunkerRoute>(
    `SELECT ${ROUTE} FROM authorizations a JOIN users u ON u.id = a.user_id LEFT JOIN keys sk ON sk.id = a.signing_key_id
     WHERE (a.revoked_at IS NULL OR a.revoked_at > now() - make_interval(secs => $1))
       AND (a.expires_at IS NULL OR a.expires_at > now() - make_interval(secs => $1))
     ORDER BY a.created_at, a.id`,
    [graceSeconds],
  );
  return rows;
}

export async function findBunkerRoute(db: Queryable, bunkerPubkey: string): Promise<BunkerRoute | undefined> {
  const { rows } = await db.query<BunkerRoute>(
    `SELECT ${ROUTE} FROM authorizations a JOIN users u ON u.id = a.user_id
       LEFT JOIN keys sk ON sk.id = a.signing_key_id WHERE a.bunker_pubkey = $1`,
    [bunkerPubkey],
  );
  return rows[0];
}

/** The authorizations behind several bunker pubkeys, fresh from the table (one query per job). */
export async function findNip46Authorizations(db: Queryable, bunkerPubkeys: string[]): Promise<Nip46Authorization[]> {
  if (bunkerPubkeys.length === 0) return [];
  const { rows } = await db.query<Nip46Authorization>(
    `SELECT a.id, a.user_id AS "userId", a.bunker_pubkey AS "bunkerPubkey", a.bunker_key_id AS "bunkerKeyId",
       a.secret_hash AS "secretHash", a.client_pubkey AS "clientPubkey", a.relays, a.revoked_at AS "revokedAt",
       ${EFFECTIVE_EXPIRY} AS "expiresAt", COALESCE(sk.pubkey, u.pubkey) AS "userPubkey",
       COALESCE(a.signing_key_id, u.key_id) AS "userKeyId", p.permissions, a.granted_kinds AS "grantedKinds"
     FROM authorizations a JOIN users u ON u.id = a.user_id JOIN policies p ON p.slug = a.policy_slug
       LEFT JOIN keys sk ON sk.id = a.signing_key_id
     WHERE a.bunker_pubkey = ANY($1::char(64)[])`,
    [bunkerPubkeys],
  );
  return rows;
}

/**
 * Binds `clientPubkey` to a live authorization whose secret hash matches, unless another client holds it.
 * True when the client is (now) the bound one.
 */
export async function bindNip46Client(
  db: Queryable,
  authorizationId: string,
  secretHash: Buffer,
  clientPubkey: string,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE authorizations SET client_pubkey = $3
     WHERE id = $1 AND secret_hash = $2 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
       AND (client_pubkey IS NULL OR client_pubkey = $3)`,
    [authorizationId, secretHash, clientPubkey],
  );
  return rowCount === 1;
}

/** The bound client logged out: the authorization ends (its secret was used and cannot bind again). */
export async function revokeNip46Authorization(
  db: Queryable,
  authorizationId: string,
  clientPubkey: string,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE authorizations SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1 AND client_pubkey = $2`,
    [authorizationId, clientPubkey],
  );
  return rowCount === 1;
}
