// Requests waiting for their user's approval (table approvals, migration 0007) and the kinds "approve
// always" grants an authorization. Every change is one guarded statement (or one transaction), so two
// replicas, two tabs or a replayed form cannot decide, dispatch or use an approval twice.
import type { Db, Queryable } from '../pool.js';
import { inTransaction } from '../pool.js';

const APPROVALS_LOCK = 0x6b66_6170; // "kfap": one user's pending approvals

export type ApprovalDoor = 'http' | 'nip46';
export type ApprovalStatus = 'pending' | 'approved' | 'denied';
export type Decision = 'once' | 'always' | 'deny';

export interface NewApproval {
  id: string;
  authorizationId: string;
  userId: string;
  door: ApprovalDoor;
  method: string;
  kind?: number;
  summary: string;
  requestEvent?: unknown;
  requestHash?: Buffer;
}

export interface ApprovalLimits {
  ttlSeconds: number;
  maxPerAuthorization: number;
  maxPerUser: number;
}

/** An approval as its page shows it (only ever read for its own user). */
export interface ApprovalView {
  id: string;
  authorizationId: string;
  applicationName: string;
  door: ApprovalDoor;
  method: string;
  kind: number | null;
  summary: string;
  status: ApprovalStatus;
  createdAt: Date;
  expiresAt: Date;
  /** Past expires_at: no longer pending (or no longer usable, once approved). */
  expired: boolean;
}

export type CreateOutcome = { id: string; status: ApprovalStatus } | { full: 'authorization' | 'user' };

/**
 * Adds a pending approval unless the authorization or the user has too many pending. An HTTP call that
 * already waits (or was approved and not used yet) under the same hash gets that approval back instead.
 * The user's rows are serialised by an advisory lock, so concurrent requests cannot pass the bound together.
 */
export function createApproval(db: Db, a: NewApproval, limits: ApprovalLimits): Promise<CreateOutcome> {
  return inTransaction(db, async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [APPROVALS_LOCK, a.userId]);
    // Expired rows are of no use to anyone: dropped here, so the table holds live requests only.
    await tx.query('DELETE FROM approvals WHERE user_id = $1 AND expires_at <= now()', [a.userId]);
    if (a.requestHash) {
      const { rows } = await tx.query<{ id: string; status: ApprovalStatus }>(
        `SELECT id, status FROM approvals
         WHERE authorization_id = $1 AND request_hash = $2 AND status <> 'denied' AND consumed_at IS NULL
         ORDER BY created_at LIMIT 1`,
        [a.authorizationId, a.requestHash],
      );
      if (rows[0]) return rows[0];
    }
    const { rows: counts } = await tx.query<{ mine: number; all: number }>(
      `SELECT count(*) FILTER (WHERE authorization_id = $2)::int AS mine, count(*)::int AS all
       FROM approvals WHERE user_id = $1 AND status = 'pending'`,
      [a.userId, a.authorizationId],
    );
    const { mine, all } = counts[0]!;
    if (mine >= limits.maxPerAuthorization) return { full: 'authorization' };
    if (all >= limits.maxPerUser) return { full: 'user' };
    await tx.query(
      `INSERT INTO approvals (id, authorization_id, user_id, door, method, kind, summary, request_event, request_hash, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now() + make_interval(secs => $10))`,
      [
        a.id,
        a.authorizationId,
        a.userId,
        a.door,
        a.method,
        a.kind ?? null,
        a.summary,
        a.requestEvent === undefined ? null : JSON.stringify(a.requestEvent),
        a.requestHash ?? null,
        limits.ttlSeconds,
      ],
    );
    return { id: a.id, status: 'pending' };
  });
}

const VIEW = `p.id, p.authorization_id AS "authorizationId", a.application_name AS "applicationName", p.door, p.method,
  p.kind, p.summary, p.status, p.created_at AS "createdAt", p.expires_at AS "expiresAt", p.expires_at <= now() AS expired`;

/** One approval of this user (any status), or nothing: another user's id reads as unknown. */
export async function findUserApproval(db: Queryable, id: string, userId: string): Promise<ApprovalView | undefined> {
  const { rows } = await db.query<ApprovalView>(
    `SELECT ${VIEW} FROM approvals p JOIN authorizations a ON a.id = p.authorization_id
     WHERE p.id = $1 AND p.user_id = $2`,
    [id, userId],
  );
  return rows[0];
}

/** This user's requests still waiting (of apps not revoked), newest first. */
export async function listPendingApprovals(db: Queryable, userId: string, limit = 100): Promise<ApprovalView[]> {
  const { rows } = await db.query<ApprovalView>(
    `SELECT ${VIEW} FROM approvals p JOIN authorizations a ON a.id = p.authorization_id
     WHERE p.user_id = $1 AND p.status = 'pending' AND p.expires_at > now()
       AND a.revoked_at IS NULL AND (a.expires_at IS NULL OR a.expires_at > now())
     ORDER BY p.created_at DESC LIMIT $2`,
    [userId, limit],
  );
  return rows;
}

export interface DecidedApproval {
  authorizationId: string;
  door: ApprovalDoor;
  /** The kind "always" granted, when it granted one. */
  grantedKind?: number;
}

/**
 * The user's decision on their own pending, unexpired approval; nothing when there is none (another
 * user's, already decided, expired). "always" on a sign_event also adds its kind to the authorization's
 * grants (at most `maxGrants`). An approval is then usable until `ttlSeconds` from now.
 */
export function decideApproval(
  db: Db,
  id: string,
  userId: string,
  decision: Decision,
  ttlSeconds: number,
  maxGrants = 256,
): Promise<DecidedApproval | undefined> {
  return inTransaction(db, async (tx) => {
    const { rows } = await tx.query<{
      authorizationId: string;
      door: ApprovalDoor;
      kind: number | null;
      method: string;
    }>(
      `UPDATE approvals SET status = $3, decided_at = now(), expires_at = now() + make_interval(secs => $4)
       WHERE id = $1 AND user_id = $2 AND status = 'pending' AND expires_at > now()
       RETURNING authorization_id AS "authorizationId", door, kind, method`,
      [id, userId, decision === 'deny' ? 'denied' : 'approved', ttlSeconds],
    );
    const row = rows[0];
    if (!row) return undefined;
    if (decision !== 'always' || row.method !== 'sign_event' || row.kind === null)
      return { authorizationId: row.authorizationId, door: row.door };
    await tx.query(
      `UPDATE authorizations SET granted_kinds = array_append(granted_kinds, $2)
       WHERE id = $1 AND user_id = $3 AND NOT ($2 = ANY (granted_kinds)) AND cardinality(granted_kinds) < $4`,
      [row.authorizationId, row.kind, userId, maxGrants],
    );
    return { authorizationId: row.authorizationId, door: row.door, grantedKind: row.kind };
  });
}

/** The state of one approval, for an HTTP request waiting on it. */
export async function approvalStatus(
  db: Queryable,
  id: string,
): Promise<{ status: ApprovalStatus; expired: boolean } | undefined> {
  const { rows } = await db.query<{ status: ApprovalStatus; expired: boolean }>(
    'SELECT status, expires_at <= now() AS expired FROM approvals WHERE id = $1',
    [id],
  );
  return rows[0];
}

/** Uses an approved HTTP approval once (by id, or by the call's hash); true when this call may run. */
export async function useHttpApproval(
  db: Queryable,
  authorizationId: string,
  by: { id: string } | { requestHash: Buffer },
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE approvals SET consumed_at = now()
     WHERE id = (SELECT id FROM approvals
                 WHERE authorization_id = $1 AND door = 'http' AND status = 'approved' AND consumed_at IS NULL
                   AND expires_at > now() AND ${'id' in by ? 'id = $2' : 'request_hash = $2'}
                 ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
       AND consumed_at IS NULL`,
    [authorizationId, 'id' in by ? by.id : by.requestHash],
  );
  return rowCount === 1;
}

/**
 * A decided NIP-46 approval, taken by the one relay-ingest that will answer it (the first to ask): the
 * request event and the bunker it was sent to.
 */
export async function takeDecidedNip46Approval(
  db: Queryable,
  id: string,
): Promise<{ event: unknown; bunkerPubkey: string } | undefined> {
  const { rows } = await db.query<{ event: unknown; bunkerPubkey: string }>(
    `UPDATE approvals p SET dispatched_at = now() FROM authorizations a
     WHERE p.id = $1 AND a.id = p.authorization_id AND p.door = 'nip46' AND p.status <> 'pending'
       AND p.dispatched_at IS NULL AND p.consumed_at IS NULL AND p.expires_at > now()
     RETURNING p.request_event AS event, a.bunker_pubkey AS "bunkerPubkey"`,
    [id],
  );
  return rows[0];
}

/** Gives a taken approval back (this relay-ingest could not send it), for another to take. */
export async function releaseNip46Approval(db: Queryable, id: string): Promise<void> {
  await db.query('UPDATE approvals SET dispatched_at = NULL WHERE id = $1 AND consumed_at IS NULL', [id]);
}

/** Decided NIP-46 approvals no relay-ingest has taken yet (their announcement was lost). */
export async function listUndispatchedNip46Approvals(db: Queryable, limit = 100): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    `SELECT id FROM approvals
     WHERE door = 'nip46' AND status <> 'pending' AND dispatched_at IS NULL AND expires_at > now()
     ORDER BY decided_at LIMIT $1`,
    [limit],
  );
  return rows.map((r) => r.id);
}

/**
 * The worker's use of a decided NIP-46 approval for the request `eventId` of `authorizationId`: its
 * status, once; nothing when it was used already or is not this request's.
 */
export async function useNip46Approval(
  db: Queryable,
  id: string,
  authorizationId: string,
  eventId: string,
): Promise<'approved' | 'denied' | undefined> {
  const { rows } = await db.query<{ status: 'approved' | 'denied' }>(
    `UPDATE approvals SET consumed_at = now()
     WHERE id = $1 AND authorization_id = $2 AND door = 'nip46' AND request_event->>'id' = $3
       AND status <> 'pending' AND consumed_at IS NULL AND expires_at > now()
     RETURNING status`,
    [id, authorizationId, eventId],
  );
  return rows[0]?.status;
}
