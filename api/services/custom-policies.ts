// Policies users make for themselves, and team admins for their team: validated and normalised here,
// counted under a per-owner lock, and every change that alters what an authorization may do (an edit of its policy, a switch to another) is
// evicted from every cache at once, through the revocation broadcast.
import { randomBytes } from 'node:crypto';
import pg, { type PoolClient } from 'pg';
import { inTransaction } from '../../database/pool.js';
import { setAuthorizationPolicy } from '../../database/queries/authorizations.js';
import {
  authorizationsUsingPolicy,
  countOwnedPolicies,
  deleteOwnedPolicy,
  findPolicy,
  insertOwnedPolicy,
  lockOwnedPolicies,
  updateOwnedPolicy,
  type CustomPolicy,
  type Policy,
  type PolicyOwner,
  type PolicyPermissions,
} from '../../database/queries/policies.js';
import type { ApiContext } from '../context.js';
import { badRequest, conflict, notFound } from '../errors.js';
import { evictEverywhere } from './authorizations.js';

const FOREIGN_KEY_VIOLATION = '23503';

/** A policy as a user writes it: per-NIP rights default to the general `encrypt`/`decrypt`, then to false. */
export interface PolicyInput {
  name: string;
  description?: string;
  permissions: {
    allowed_kinds: number[] | 'all';
    encrypt?: boolean;
    decrypt?: boolean;
    nip04_encrypt?: boolean;
    nip04_decrypt?: boolean;
    nip44_encrypt?: boolean;
    nip44_decrypt?: boolean;
    max_content_bytes?: number | null;
    expires_after_seconds?: number | null;
    max_uses?: number | null;
    ask?: boolean;
  };
}

/** The permissions stored for an input: kinds sorted without repeats, every right explicit, limits only when set. */
export function normalisePermissions(input: PolicyInput['permissions']): PolicyPermissions {
  const right = (v: boolean | undefined, general: boolean | undefined) => v ?? general ?? false;
  const nip04_encrypt = right(input.nip04_encrypt, input.encrypt);
  const nip44_encrypt = right(input.nip44_encrypt, input.encrypt);
  const nip04_decrypt = right(input.nip04_decrypt, input.decrypt);
  const nip44_decrypt = right(input.nip44_decrypt, input.decrypt);
  const p: PolicyPermissions = {
    allowed_kinds: input.allowed_kinds === 'all' ? 'all' : [...new Set(input.allowed_kinds)].sort((a, b) => a - b),
    encrypt: nip04_encrypt || nip44_encrypt,
    decrypt: nip04_decrypt || nip44_decrypt,
    nip04_encrypt,
    nip04_decrypt,
    nip44_encrypt,
    nip44_decrypt,
  };
  if (input.max_content_bytes != null) p.max_content_bytes = input.max_content_bytes;
  if (input.expires_after_seconds != null) p.expires_after_seconds = input.expires_after_seconds;
  if (input.max_uses != null) p.max_uses = input.max_uses;
  if (input.ask) p.ask = true;
  return p;
}

function fields(input: PolicyInput) {
  const name = input.name.trim();
  if (name.length === 0) throw badRequest('name must not be blank');
  return {
    display_name: name,
    description: (input.description ?? '').trim(),
    permissions: normalisePermissions(input.permissions),
  };
}

/** Custom slugs are random: they name nothing about their owner and cannot collide with a built-in. */
function newSlug(): string {
  return `p-${randomBytes(9)
    .toString('base64url')
    .toLowerCase()
    .replace(/[^a-z0-9]/g, 'x')}`;
}

/** Checks, in the changing transaction, that the caller may change the owner's policies (a team's: its admins). */
export type MayChangePolicies = (tx: PoolClient) => Promise<unknown>;

function policyCap(ctx: ApiContext, owner: PolicyOwner): { most: number; per: string } {
  return 'userId' in owner
    ? { most: ctx.config.MAX_POLICIES_PER_USER, per: 'user' }
    : { most: ctx.config.TEAM_MAX_POLICIES, per: 'team' };
}

export async function createPolicy(
  ctx: ApiContext,
  owner: PolicyOwner,
  input: PolicyInput,
  mayChange?: MayChangePolicies,
): Promise<CustomPolicy> {
  const f = fields(input);
  const cap = policyCap(ctx, owner);
  return inTransaction(ctx.db, async (tx) => {
    await mayChange?.(tx);
    await lockOwnedPolicies(tx, owner);
    if ((await countOwnedPolicies(tx, owner)) >= cap.most)
      throw conflict(`at most ${cap.most} policies per ${cap.per}: delete one first`);
    return insertOwnedPolicy(tx, owner, newSlug(), f);
  });
}

/** Replaces one of the owner's policies; every authorization under it obeys the new version from now on. */
export async function editPolicy(
  ctx: ApiContext,
  owner: PolicyOwner,
  slug: string,
  input: PolicyInput,
  mayChange?: MayChangePolicies,
): Promise<CustomPolicy> {
  const f = fields(input);
  const updated = await inTransaction(ctx.db, async (tx) => {
    await mayChange?.(tx);
    return updateOwnedPolicy(tx, owner, slug, f);
  });
  if (!updated) throw notFound('no such policy');
  for (const authorizationId of await authorizationsUsingPolicy(ctx.db, slug))
    await evictEverywhere(ctx, { type: 'authorization', authorizationId });
  return updated;
}

export async function removePolicy(
  ctx: ApiContext,
  owner: PolicyOwner,
  slug: string,
  mayChange?: MayChangePolicies,
): Promise<void> {
  let outcome: Awaited<ReturnType<typeof deleteOwnedPolicy>>;
  try {
    outcome = await inTransaction(ctx.db, async (tx) => {
      await mayChange?.(tx);
      return deleteOwnedPolicy(tx, owner, slug);
    });
  } catch (err) {
    // An authorization or code took the policy meanwhile.
    if (err instanceof pg.DatabaseError && err.code === FOREIGN_KEY_VIOLATION) outcome = 'in_use';
    else throw err;
  }
  if (outcome === 'not_found') throw notFound('no such policy');
  if (outcome === 'in_use')
    throw conflict('a live authorization uses this policy: give it another policy or revoke it first');
}

/** Puts one of the user's authorizations under another policy (a built-in or theirs), in force at once. */
export async function changeAuthorizationPolicy(
  ctx: ApiContext,
  userId: string,
  authorizationId: string,
  slug: string,
): Promise<Policy> {
  const policy = await findPolicy(ctx.db, slug, userId);
  if (!policy) throw badRequest(`unknown policy: ${slug}`, 'unknown_policy');
  let changed: { id: string } | undefined;
  try {
    changed = await setAuthorizationPolicy(ctx.db, userId, authorizationId, slug);
  } catch (err) {
    // The policy was deleted between the look-up and the update.
    if (err instanceof pg.DatabaseError && err.code === FOREIGN_KEY_VIOLATION)
      throw badRequest(`unknown policy: ${slug}`, 'unknown_policy');
    throw err;
  }
  if (!changed)
    throw notFound('no such authorization (or it is revoked, or signs with a team key: a team admin changes that one)');
  await evictEverywhere(ctx, { type: 'authorization', authorizationId });
  return policy;
}
