// Teams, their members and invites, and the keys and authorizations they own. Changes to one team
// (members, keys, its authorizations) run under lockTeam, so the limits and the last-admin rule hold
// across api replicas.
import type { Queryable } from '../pool.js';
import type { Policy } from './policies.js';

export type TeamRole = 'admin' | 'member';

export interface TeamRow {
  id: string;
  name: string;
  createdAt: Date;
}

export interface MyTeam extends TeamRow {
  role: TeamRole;
  memberCount: number;
  keyCount: number;
}

export interface TeamMember {
  userId: string;
  email: string;
  pubkey: string;
  role: TeamRole;
  createdAt: Date;
}

export interface TeamKey {
  id: string;
  name: string;
  pubkey: string;
  createdAt: Date;
}

export interface TeamInvite {
  email: string;
  role: TeamRole;
  expiresAt: Date;
  createdAt: Date;
}

export interface TeamAuthorization {
  id: string;
  userId: string;
  userEmail: string;
  applicationName: string;
  policySlug: string;
  bunkerPubkey: string;
  keyPubkey: string;
  keyName: string;
  clientPubkey: string | null;
  createdAt: Date;
  lastActivity: Date | null;
  activityCount: number;
  expiresAt: Date | null;
  revokedAt: Date | null;
}

/** An authorization that was just revoked: what the eviction broadcast names. */
export interface RevokedAuthorization {
  id: string;
  bunkerKeyId: string;
}

/** Advisory lock namespace (first key of the two-key form) of one user's team memberships. */
const USER_TEAMS_LOCK = 0x6b66_746d; // "kftm"

export async function insertTeam(db: Queryable, t: { id: string; name: string; createdBy: string }): Promise<void> {
  await db.query('INSERT INTO teams (id, name, created_by) VALUES ($1, $2, $3)', [t.id, t.name, t.createdBy]);
}

/** Serialises changes to one team until the transaction ends; false when there is no such team. */
export async function lockTeam(tx: Queryable, teamId: string): Promise<boolean> {
  const { rowCount } = await tx.query('SELECT 1 FROM teams WHERE id = $1 FOR UPDATE', [teamId]);
  return rowCount === 1;
}

/** Serialises joins (creations and accepted invites) of one user until the transaction ends. */
export async function lockUserTeams(tx: Queryable, userId: string): Promise<void> {
  await tx.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [USER_TEAMS_LOCK, userId]);
}

export async function countUserTeams(db: Queryable, userId: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM team_members WHERE user_id = $1', [
    userId,
  ]);
  return rows[0]!.n;
}

export async function insertMember(db: Queryable, teamId: string, userId: string, role: TeamRole): Promise<void> {
  await db.query('INSERT INTO team_members (team_id, user_id, role) VALUES ($1, $2, $3)', [teamId, userId, role]);
}

/** The user's role in the team, or undefined when they are not a member (or there is no such team). */
export async function findRole(db: Queryable, teamId: string, userId: string): Promise<TeamRole | undefined> {
  const { rows } = await db.query<{ role: TeamRole }>(
    'SELECT role FROM team_members WHERE team_id = $1 AND user_id = $2',
    [teamId, userId],
  );
  return rows[0]?.role;
}

export async function listUserTeams(db: Queryable, userId: string): Promise<MyTeam[]> {
  const { rows } = await db.query<MyTeam>(
    `SELECT t.id, t.name, t.created_at AS "createdAt", m.role,
       (SELECT count(*)::int FROM team_members x WHERE x.team_id = t.id) AS "memberCount",
       (SELECT count(*)::int FROM keys k WHERE k.owner_kind = 'team' AND k.owner_id = t.id) AS "keyCount"
     FROM team_members m JOIN teams t ON t.id = m.team_id WHERE m.user_id = $1 ORDER BY t.created_at, t.id`,
    [userId],
  );
  return rows;
}

export async function findTeam(db: Queryable, teamId: string): Promise<TeamRow | undefined> {
  const { rows } = await db.query<TeamRow>('SELECT id, name, created_at AS "createdAt" FROM teams WHERE id = $1', [
    teamId,
  ]);
  return rows[0];
}

export async function renameTeam(db: Queryable, teamId: string, name: string): Promise<void> {
  await db.query('UPDATE teams SET name = $2 WHERE id = $1', [teamId, name]);
}

export async function listMembers(db: Queryable, teamId: string): Promise<TeamMember[]> {
  const { rows } = await db.query<TeamMember>(
    `SELECT m.user_id AS "userId", u.email, u.pubkey, m.role, m.created_at AS "createdAt"
     FROM team_members m JOIN users u ON u.id = m.user_id WHERE m.team_id = $1 ORDER BY m.created_at, u.pubkey`,
    [teamId],
  );
  return rows;
}

export async function findMemberByPubkey(
  db: Queryable,
  teamId: string,
  pubkey: string,
): Promise<{ userId: string; role: TeamRole } | undefined> {
  const { rows } = await db.query<{ userId: string; role: TeamRole }>(
    `SELECT m.user_id AS "userId", m.role FROM team_members m JOIN users u ON u.id = m.user_id
     WHERE m.team_id = $1 AND u.pubkey = $2`,
    [teamId, pubkey],
  );
  return rows[0];
}

export async function countMembers(db: Queryable, teamId: string, role?: TeamRole): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM team_members WHERE team_id = $1 AND ($2::text IS NULL OR role = $2)',
    [teamId, role ?? null],
  );
  return rows[0]!.n;
}

/** Whether a member of the team has this email address (case aside). */
export async function isMemberEmail(db: Queryable, teamId: string, email: string): Promise<boolean> {
  const { rowCount } = await db.query(
    `SELECT 1 FROM team_members m JOIN users u ON u.id = m.user_id WHERE m.team_id = $1 AND lower(u.email) = lower($2)`,
    [teamId, email],
  );
  return (rowCount ?? 0) > 0;
}

export async function setRole(db: Queryable, teamId: string, userId: string, role: TeamRole): Promise<void> {
  await db.query('UPDATE team_members SET role = $3 WHERE team_id = $1 AND user_id = $2', [teamId, userId, role]);
}

export async function deleteMember(db: Queryable, teamId: string, userId: string): Promise<void> {
  await db.query('DELETE FROM team_members WHERE team_id = $1 AND user_id = $2', [teamId, userId]);
}

export async function listTeamKeys(db: Queryable, teamId: string): Promise<TeamKey[]> {
  const { rows } = await db.query<TeamKey>(
    `SELECT id, name, pubkey, created_at AS "createdAt" FROM keys
     WHERE owner_kind = 'team' AND owner_id = $1 ORDER BY created_at, id`,
    [teamId],
  );
  return rows;
}

export async function findTeamKey(db: Queryable, teamId: string, pubkey: string): Promise<TeamKey | undefined> {
  const { rows } = await db.query<TeamKey>(
    `SELECT id, name, pubkey, created_at AS "createdAt" FROM keys
     WHERE owner_kind = 'team' AND owner_id = $1 AND pubkey = $2`,
    [teamId, pubkey],
  );
  return rows[0];
}

export async function countTeamKeys(db: Queryable, teamId: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM keys WHERE owner_kind = 'team' AND owner_id = $1`,
    [teamId],
  );
  return rows[0]!.n;
}

const TEAM_AUTHORIZATION = `a.id, a.user_id AS "userId", u.email AS "userEmail", a.application_name AS "applicationName",
  a.policy_slug AS "policySlug", a.bunker_pubkey AS "bunkerPubkey", k.pubkey AS "keyPubkey", k.name AS "keyName",
  a.client_pubkey AS "clientPubkey", a.created_at AS "createdAt", a.last_activity AS "lastActivity",
  a.activity_count AS "activityCount", a.expires_at AS "expiresAt", a.revoked_at AS "revokedAt"`;

/** How many of the team's keys have this pubkey (a key is held once per team). */
export async function countTeamKeyPubkey(db: Queryable, teamId: string, pubkey: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM keys WHERE owner_kind = 'team' AND owner_id = $1 AND pubkey = $2`,
    [teamId, pubkey],
  );
  return rows[0]!.n;
}

/** Authorizations that sign with one of the team's keys, newest first. */
export async function listTeamAuthorizations(db: Queryable, teamId: string): Promise<TeamAuthorization[]> {
  const { rows } = await db.query<TeamAuthorization>(
    `SELECT ${TEAM_AUTHORIZATION} FROM authorizations a
       JOIN keys k ON k.id = a.signing_key_id AND k.owner_kind = 'team'
       JOIN users u ON u.id = a.user_id
     WHERE k.owner_id = $1 ORDER BY a.created_at DESC, a.id`,
    [teamId],
  );
  return rows;
}

/** Revokes one authorization signing with a key of this team; undefined when there is none such. */
export async function revokeTeamAuthorization(
  db: Queryable,
  teamId: string,
  authorizationId: string,
): Promise<RevokedAuthorization | undefined> {
  const { rows } = await db.query<RevokedAuthorization>(
    `UPDATE authorizations a SET revoked_at = COALESCE(a.revoked_at, now())
     FROM keys k WHERE a.id = $2 AND k.id = a.signing_key_id AND k.owner_kind = 'team' AND k.owner_id = $1
     RETURNING a.id, a.bunker_key_id AS "bunkerKeyId"`,
    [teamId, authorizationId],
  );
  return rows[0];
}

/** Puts an unrevoked authorization on one of the team's keys under another policy; undefined if none such. */
export async function setTeamAuthorizationPolicy(
  db: Queryable,
  teamId: string,
  authorizationId: string,
  policySlug: string,
): Promise<{ id: string } | undefined> {
  const { rows } = await db.query<{ id: string }>(
    `UPDATE authorizations a SET policy_slug = $3
     FROM keys k WHERE a.id = $2 AND a.revoked_at IS NULL
       AND k.id = a.signing_key_id AND k.owner_kind = 'team' AND k.owner_id = $1
     RETURNING a.id`,
    [teamId, authorizationId, policySlug],
  );
  return rows[0];
}

/** Revokes every live authorization of `userId` that signs with a key of this team (they left it). */
export async function revokeMemberTeamAuthorizations(
  db: Queryable,
  teamId: string,
  userId: string,
): Promise<RevokedAuthorization[]> {
  const { rows } = await db.query<RevokedAuthorization>(
    `UPDATE authorizations a SET revoked_at = now()
     FROM keys k WHERE a.user_id = $2 AND a.revoked_at IS NULL
       AND k.id = a.signing_key_id AND k.owner_kind = 'team' AND k.owner_id = $1
     RETURNING a.id, a.bunker_key_id AS "bunkerKeyId"`,
    [teamId, userId],
  );
  return rows;
}

/** A policy a team authorization may use: a built-in (no owner) or one of this team's own. */
export async function findTeamUsablePolicy(db: Queryable, teamId: string, slug: string): Promise<Policy | undefined> {
  const { rows } = await db.query<Policy>(
    `SELECT slug, display_name, description, permissions FROM policies
     WHERE slug = $2 AND owner_user_id IS NULL AND (owner_team_id IS NULL OR owner_team_id = $1)`,
    [teamId, slug],
  );
  return rows[0];
}

export async function replaceInvite(
  db: Queryable,
  i: { tokenHash: Buffer; teamId: string; email: string; role: TeamRole; invitedBy: string; expiresAt: Date },
): Promise<void> {
  await db.query(
    `INSERT INTO team_invites (token_hash, team_id, email, role, invited_by, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (team_id, lower(email)) DO UPDATE SET token_hash = EXCLUDED.token_hash, role = EXCLUDED.role,
       invited_by = EXCLUDED.invited_by, expires_at = EXCLUDED.expires_at, created_at = now()`,
    [i.tokenHash, i.teamId, i.email, i.role, i.invitedBy, i.expiresAt],
  );
}

/** Unexpired invites of the team. */
export async function listInvites(db: Queryable, teamId: string): Promise<TeamInvite[]> {
  const { rows } = await db.query<TeamInvite>(
    `SELECT email, role, expires_at AS "expiresAt", created_at AS "createdAt" FROM team_invites
     WHERE team_id = $1 AND expires_at > now() ORDER BY created_at`,
    [teamId],
  );
  return rows;
}

export async function deleteExpiredInvites(db: Queryable, teamId: string): Promise<void> {
  await db.query('DELETE FROM team_invites WHERE team_id = $1 AND expires_at <= now()', [teamId]);
}

export async function countInvites(db: Queryable, teamId: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM team_invites WHERE team_id = $1 AND expires_at > now()',
    [teamId],
  );
  return rows[0]!.n;
}

export async function deleteInvite(db: Queryable, teamId: string, email: string): Promise<boolean> {
  const { rowCount } = await db.query('DELETE FROM team_invites WHERE team_id = $1 AND lower(email) = lower($2)', [
    teamId,
    email,
  ]);
  return rowCount === 1;
}

/** The unexpired invite a token names, locked until the transaction ends. */
export async function lockInvite(
  tx: Queryable,
  tokenHash: Buffer,
): Promise<{ teamId: string; email: string; role: TeamRole } | undefined> {
  const { rows } = await tx.query<{ teamId: string; email: string; role: TeamRole }>(
    `SELECT team_id AS "teamId", email, role FROM team_invites WHERE token_hash = $1 AND expires_at > now() FOR UPDATE`,
    [tokenHash],
  );
  return rows[0];
}

export async function spendInvite(tx: Queryable, tokenHash: Buffer): Promise<void> {
  await tx.query('DELETE FROM team_invites WHERE token_hash = $1', [tokenHash]);
}

/** The policies a team's authorizations may use: the built-ins and the team's own. */
export async function listTeamPolicies(
  db: Queryable,
  teamId: string,
): Promise<{ slug: string; displayName: string }[]> {
  const { rows } = await db.query<{ slug: string; displayName: string }>(
    `SELECT slug, display_name AS "displayName" FROM policies
     WHERE owner_user_id IS NULL AND (owner_team_id IS NULL OR owner_team_id = $1) ORDER BY owner_team_id NULLS FIRST, slug`,
    [teamId],
  );
  return rows;
}

/** Deletes every authorization that signs with one of `keyIds` (their tokens and activity go with them). */
export async function deleteAuthorizationsSigningWith(
  db: Queryable,
  keyIds: string[],
): Promise<RevokedAuthorization[]> {
  const { rows } = await db.query<RevokedAuthorization>(
    `DELETE FROM authorizations WHERE signing_key_id = ANY($1::uuid[]) RETURNING id, bunker_key_id AS "bunkerKeyId"`,
    [keyIds],
  );
  return rows;
}

/** Deletes sealed keys (a team's, and the bunker keys of its deleted authorizations). */
export async function deleteKeys(db: Queryable, keyIds: string[]): Promise<void> {
  await db.query('DELETE FROM keys WHERE id = ANY($1::uuid[])', [keyIds]);
}

/** Deletes the team row; members, invites and the team's own policies go with it. */
export async function deleteTeamRow(db: Queryable, teamId: string): Promise<void> {
  await db.query('DELETE FROM teams WHERE id = $1', [teamId]);
}
