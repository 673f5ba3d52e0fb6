// Teams: people who share keys. Admins invite by email, manage members and the team's keys, and create
// authorizations that sign with a team key; members see the team, its keys and authorizations. Every
// change runs in one transaction under the team's row lock, so limits and the last-admin rule hold across
// replicas; a change that ends someone's access revokes and broadcasts like any revocation.
import { randomUUID } from 'node:crypto';
import type { PoolClient } from 'pg';
import { inTransaction } from '../../database/pool.js';
import {
  countInvites,
  countMembers,
  countTeamKeyPubkey,
  countTeamKeys,
  countUserTeams,
  deleteAuthorizationsSigningWith,
  deleteKeys,
  deleteTeamRow,
  deleteExpiredInvites,
  deleteInvite,
  deleteMember,
  findMemberByPubkey,
  findRole,
  findTeam,
  findTeamKey,
  isMemberEmail,
  insertMember,
  insertTeam,
  findTeamUsablePolicy,
  lockInvite,
  lockTeam,
  listTeamKeys,
  lockUserTeams,
  renameTeam,
  replaceInvite,
  revokeMemberTeamAuthorizations,
  revokeTeamAuthorization,
  setRole,
  setTeamAuthorizationPolicy,
  spendInvite,
  type RevokedAuthorization,
  type TeamKey,
  type TeamRole,
} from '../../database/queries/teams.js';
import { findUserById } from '../../database/queries/users.js';
import { generateSecretKey, parseSecretKey } from '../../shared/nostr/keys.js';
import type { ApiContext } from '../context.js';
import { badRequest, conflict, forbidden, notFound } from '../errors.js';
import type { CustomPolicy, Policy } from '../../database/queries/policies.js';
import { createAuthorization, evictEverywhere, type CreatedAuthorization } from './authorizations.js';
import { createPolicy, editPolicy, removePolicy, type PolicyInput } from './custom-policies.js';
import { mayMail } from './mail-quota.js';
import { issueTokens } from './oauth.js';
import { hashToken, newToken } from './tokens.js';

export const NO_SUCH_TEAM = 'no such team';
export const INVALID_INVITE = 'this invite link is invalid, already used or expired: ask the team for a new one';

/**
 * The caller's role, checked: a non-member learns nothing of the team (404, as for one that does not
 * exist); a member asking for an admin's action gets 403.
 */
export async function requireRole(
  db: ApiContext['db'] | PoolClient,
  teamId: string,
  userId: string,
  need: TeamRole,
): Promise<TeamRole> {
  const role = await findRole(db, teamId, userId);
  if (!role) throw notFound(NO_SUCH_TEAM);
  if (need === 'admin' && role !== 'admin') throw forbidden('only a team admin may do this');
  return role;
}

/** Locks the team and checks the caller's role in the same transaction. */
async function lockAsRole(tx: PoolClient, teamId: string, userId: string, need: TeamRole): Promise<TeamRole> {
  if (!(await lockTeam(tx, teamId))) throw notFound(NO_SUCH_TEAM);
  return requireRole(tx, teamId, userId, need);
}

async function evictRevoked(ctx: ApiContext, revoked: RevokedAuthorization[]): Promise<void> {
  for (const r of revoked) {
    await evictEverywhere(ctx, { type: 'authorization', authorizationId: r.id });
    await evictEverywhere(ctx, { type: 'key', keyId: r.bunkerKeyId });
  }
}

export async function createTeam(ctx: ApiContext, userId: string, name: string): Promise<string> {
  const teamId = randomUUID();
  await inTransaction(ctx.db, async (tx) => {
    await lockUserTeams(tx, userId);
    if ((await countUserTeams(tx, userId)) >= ctx.config.TEAMS_MAX_PER_USER)
      throw conflict(`you belong to ${ctx.config.TEAMS_MAX_PER_USER} teams, the most allowed`);
    await insertTeam(tx, { id: teamId, name, createdBy: userId });
    await insertMember(tx, teamId, userId, 'admin');
  });
  return teamId;
}

export async function renameTeamAsAdmin(ctx: ApiContext, userId: string, teamId: string, name: string): Promise<void> {
  await inTransaction(ctx.db, async (tx) => {
    await lockAsRole(tx, teamId, userId, 'admin');
    await renameTeam(tx, teamId, name);
  });
}

export function inviteLink(ctx: ApiContext, token: string): string {
  return `${ctx.config.PUBLIC_URL}/teams/accept?token=${encodeURIComponent(token)}`;
}

/**
 * Invites an address (a newer invite of the same address replaces the older). The mail goes out unless the
 * address had its share of mail already; the answer is the same either way.
 */
export async function inviteMember(
  ctx: ApiContext,
  userId: string,
  teamId: string,
  input: { email: string; role: TeamRole },
): Promise<{ expiresAt: Date }> {
  const email = input.email.trim();
  const token = newToken('team-invite');
  const expiresAt = new Date(Date.now() + ctx.config.TEAM_INVITE_TTL_HOURS * 3600_000);
  const teamName = await inTransaction(ctx.db, async (tx) => {
    await lockAsRole(tx, teamId, userId, 'admin');
    const team = (await findTeam(tx, teamId))!;
    if (await isMemberEmail(tx, teamId, email)) throw conflict('that address belongs to a member of the team already');
    await deleteInvite(tx, teamId, email);
    await deleteExpiredInvites(tx, teamId);
    const seats = (await countMembers(tx, teamId)) + (await countInvites(tx, teamId));
    if (seats >= ctx.config.TEAM_MAX_MEMBERS)
      throw conflict(`the team has ${ctx.config.TEAM_MAX_MEMBERS} members and invites, the most allowed`);
    await replaceInvite(tx, {
      tokenHash: hashToken(token),
      teamId,
      email,
      role: input.role,
      invitedBy: userId,
      expiresAt,
    });
    return team.name;
  });
  if (await mayMail(ctx, email)) {
    ctx.mailer.deliver({
      kind: 'team-invite',
      to: email,
      subject: `You are invited to the team "${oneLine(teamName)}" on Keyfarm`,
      text: [
        'Hello,',
        '',
        `You are invited to join the team "${oneLine(teamName)}" on Keyfarm as ${input.role === 'admin' ? 'an admin' : 'a member'}.`,
        'Sign in (or create an account) with this address, then open this link:',
        '',
        inviteLink(ctx, token),
        '',
        `The link works once, for ${ctx.config.TEAM_INVITE_TTL_HOURS} hours.`,
        '',
        'If you do not know this team, you can ignore this message.',
      ].join('\n'),
    });
  }
  return { expiresAt };
}

/** A team name in a mail's subject and text: no line breaks, bounded. */
function oneLine(s: string): string {
  return s.replace(/[\r\n\t]+/g, ' ').slice(0, 100);
}

export async function cancelInvite(ctx: ApiContext, userId: string, teamId: string, email: string): Promise<void> {
  await inTransaction(ctx.db, async (tx) => {
    await lockAsRole(tx, teamId, userId, 'admin');
    if (!(await deleteInvite(tx, teamId, email))) throw notFound('no such invite');
  });
}

/**
 * Accepts an invite for the signed-in user, whose address must be the one invited. A refused attempt
 * leaves the invite for its owner; an accepted one spends it.
 */
export async function acceptInvite(
  ctx: ApiContext,
  userId: string,
  token: string,
): Promise<{ teamId: string; role: TeamRole }> {
  const tokenHash = hashToken(token);
  return inTransaction(ctx.db, async (tx) => {
    const invite = await lockInvite(tx, tokenHash);
    if (!invite) throw badRequest(INVALID_INVITE);
    const user = await findUserById(tx, userId);
    if (!user || user.email.toLowerCase() !== invite.email.toLowerCase())
      throw forbidden('this invite is for another email address: sign in with the address it was sent to');
    await lockUserTeams(tx, userId);
    await lockTeam(tx, invite.teamId);
    const role = await findRole(tx, invite.teamId, userId);
    if (role) {
      await spendInvite(tx, tokenHash);
      return { teamId: invite.teamId, role };
    }
    if ((await countUserTeams(tx, userId)) >= ctx.config.TEAMS_MAX_PER_USER)
      throw conflict(`you belong to ${ctx.config.TEAMS_MAX_PER_USER} teams, the most allowed`);
    // The invite held a seat, so members alone are counted here.
    if ((await countMembers(tx, invite.teamId)) >= ctx.config.TEAM_MAX_MEMBERS) throw conflict('the team is full');
    await insertMember(tx, invite.teamId, userId, invite.role);
    await spendInvite(tx, tokenHash);
    return { teamId: invite.teamId, role: invite.role };
  });
}

/**
 * Removes a member (an admin may remove anyone, a member only themselves). The team keeps at least one
 * admin. Their authorizations on the team's keys are revoked and evicted everywhere before this returns.
 */
export async function removeMember(ctx: ApiContext, userId: string, teamId: string, pubkey: string): Promise<void> {
  const revoked = await inTransaction(ctx.db, async (tx) => {
    const role = await lockAsRole(tx, teamId, userId, 'member');
    const target = await findMemberByPubkey(tx, teamId, pubkey);
    if (!target) throw notFound('no such member');
    if (target.userId !== userId && role !== 'admin') throw forbidden('only a team admin may remove others');
    if (target.role === 'admin' && (await countMembers(tx, teamId, 'admin')) <= 1)
      throw conflict('a team keeps at least one admin: make another member admin first');
    await deleteMember(tx, teamId, target.userId);
    return revokeMemberTeamAuthorizations(tx, teamId, target.userId);
  });
  await evictRevoked(ctx, revoked);
}

export async function changeRole(
  ctx: ApiContext,
  userId: string,
  teamId: string,
  pubkey: string,
  role: TeamRole,
): Promise<void> {
  await inTransaction(ctx.db, async (tx) => {
    await lockAsRole(tx, teamId, userId, 'admin');
    const target = await findMemberByPubkey(tx, teamId, pubkey);
    if (!target) throw notFound('no such member');
    if (target.role === 'admin' && role !== 'admin' && (await countMembers(tx, teamId, 'admin')) <= 1)
      throw conflict('a team keeps at least one admin: make another member admin first');
    await setRole(tx, teamId, target.userId, role);
  });
}

/** Generates a team key, or imports the one given (nsec or hex); the secret is zeroed once sealed. */
export async function addTeamKey(
  ctx: ApiContext,
  userId: string,
  teamId: string,
  input: { name: string; secretKey?: string },
): Promise<TeamKey> {
  let secretKey: Uint8Array;
  try {
    secretKey = input.secretKey !== undefined ? parseSecretKey(input.secretKey.trim()) : generateSecretKey();
  } catch {
    throw badRequest('invalid secret_key: expected nsec1… or 64 hex characters of a valid secret key', 'invalid_nsec');
  }
  try {
    return await inTransaction(ctx.db, async (tx) => {
      await lockAsRole(tx, teamId, userId, 'admin');
      if ((await countTeamKeys(tx, teamId)) >= ctx.config.TEAM_MAX_KEYS)
        throw conflict(`the team holds ${ctx.config.TEAM_MAX_KEYS} keys, the most allowed`);
      const stored = await ctx.keyStore.create(tx, 'team', teamId, secretKey, input.name);
      if ((await countTeamKeyPubkey(tx, teamId, stored.pubkey)) > 1)
        throw conflict('the team holds this key already', 'key_taken');
      return (await findTeamKey(tx, teamId, stored.pubkey))!;
    });
  } finally {
    secretKey.fill(0);
  }
}

/** A built-in or one of this team's own policies (never a user's, nor another team's); else 400. */
async function teamUsablePolicy(db: ApiContext['db'] | PoolClient, teamId: string, slug: string): Promise<Policy> {
  const policy = await findTeamUsablePolicy(db, teamId, slug);
  if (!policy) throw badRequest(`unknown policy: ${slug}`, 'unknown_policy');
  return policy;
}

export interface TeamAuthorizationInput {
  applicationName: string;
  policySlug?: string;
  relays?: string[];
  expiresAt?: Date | null;
  /** Also issue an access and refresh token for the HTTP RPC door (POST /api/nostr). */
  issueToken?: boolean;
}

export interface CreatedTeamAuthorization extends CreatedAuthorization {
  tokens?: { access: string; refresh: string };
}

/**
 * An authorization that signs with a team key, held by the admin who creates it. Their role and the key
 * are checked under the team's lock in the creating transaction, so a removal cannot slip in between.
 */
export async function createTeamAuthorization(
  ctx: ApiContext,
  userId: string,
  teamId: string,
  keyPubkey: string,
  input: TeamAuthorizationInput,
): Promise<CreatedTeamAuthorization> {
  await requireRole(ctx.db, teamId, userId, 'admin');
  const key = await findTeamKey(ctx.db, teamId, keyPubkey);
  if (!key) throw notFound('no such key in this team');
  const policy = await teamUsablePolicy(ctx.db, teamId, input.policySlug ?? 'full');
  const created = await createAuthorization(ctx, {
    userId,
    applicationName: input.applicationName,
    policy,
    relays: input.relays,
    expiresAt: input.expiresAt ?? null,
    signingKeyId: key.id,
    checkInTransaction: async (tx) => {
      await lockAsRole(tx, teamId, userId, 'admin');
      if (!(await findTeamKey(tx, teamId, keyPubkey))) throw notFound('no such key in this team');
      await teamUsablePolicy(tx, teamId, policy.slug);
    },
  });
  if (!input.issueToken) return created;
  const tokens = await issueTokens(ctx.db, created.authorizationId, randomUUID());
  return { ...created, tokens };
}

export async function revokeTeamAuthorizationAsAdmin(
  ctx: ApiContext,
  userId: string,
  teamId: string,
  authorizationId: string,
): Promise<void> {
  const revoked = await inTransaction(ctx.db, async (tx) => {
    await lockAsRole(tx, teamId, userId, 'admin');
    return revokeTeamAuthorization(tx, teamId, authorizationId);
  });
  if (!revoked) throw notFound('no such authorization in this team');
  await evictRevoked(ctx, [revoked]);
}

/**
 * Deletes team keys with everything that signs with them: their authorizations (tokens and activity too),
 * those authorizations' bunker keys, and the sealed keys themselves; then evicts them everywhere.
 */
async function deleteKeysAndAuthorizations(tx: PoolClient, keyIds: string[]): Promise<RevokedAuthorization[]> {
  const removed = await deleteAuthorizationsSigningWith(tx, keyIds);
  await deleteKeys(tx, [...removed.map((r) => r.bunkerKeyId), ...keyIds]);
  return removed;
}

export async function removeTeamKey(ctx: ApiContext, userId: string, teamId: string, pubkey: string): Promise<void> {
  const { removed, keyId } = await inTransaction(ctx.db, async (tx) => {
    await lockAsRole(tx, teamId, userId, 'admin');
    const key = await findTeamKey(tx, teamId, pubkey);
    if (!key) throw notFound('no such key in this team');
    return { removed: await deleteKeysAndAuthorizations(tx, [key.id]), keyId: key.id };
  });
  await evictRevoked(ctx, removed);
  await evictEverywhere(ctx, { type: 'key', keyId });
}

export async function deleteTeam(ctx: ApiContext, userId: string, teamId: string): Promise<void> {
  const { removed, keyIds } = await inTransaction(ctx.db, async (tx) => {
    await lockAsRole(tx, teamId, userId, 'admin');
    const keyIds = (await listTeamKeys(tx, teamId)).map((k) => k.id);
    const removed = await deleteKeysAndAuthorizations(tx, keyIds);
    await deleteTeamRow(tx, teamId);
    return { removed, keyIds };
  });
  await evictRevoked(ctx, removed);
  for (const keyId of keyIds) await evictEverywhere(ctx, { type: 'key', keyId });
}

/** Team policies: the custom-policy service with the team as owner, its admins alone changing them. */
const asTeamAdmin = (teamId: string, userId: string) => (tx: PoolClient) => lockAsRole(tx, teamId, userId, 'admin');

export function createTeamPolicy(
  ctx: ApiContext,
  userId: string,
  teamId: string,
  input: PolicyInput,
): Promise<CustomPolicy> {
  return createPolicy(ctx, { teamId }, input, asTeamAdmin(teamId, userId));
}

export function editTeamPolicy(
  ctx: ApiContext,
  userId: string,
  teamId: string,
  slug: string,
  input: PolicyInput,
): Promise<CustomPolicy> {
  return editPolicy(ctx, { teamId }, slug, input, asTeamAdmin(teamId, userId));
}

export function removeTeamPolicy(ctx: ApiContext, userId: string, teamId: string, slug: string): Promise<void> {
  return removePolicy(ctx, { teamId }, slug, asTeamAdmin(teamId, userId));
}

/**
 * Puts one of the team's authorizations under another policy: a built-in or one of this team's own (never a
 * user's, nor another team's). In force on both doors at once.
 */
export async function changeTeamAuthorizationPolicy(
  ctx: ApiContext,
  userId: string,
  teamId: string,
  authorizationId: string,
  slug: string,
): Promise<void> {
  await inTransaction(ctx.db, async (tx) => {
    await lockAsRole(tx, teamId, userId, 'admin');
    // Under the team's lock: a team policy cannot be deleted between this check and the update.
    await teamUsablePolicy(tx, teamId, slug);
    if (!(await setTeamAuthorizationPolicy(tx, teamId, authorizationId, slug)))
      throw notFound('no such authorization in this team (or it is revoked)');
  });
  await evictEverywhere(ctx, { type: 'authorization', authorizationId });
}
