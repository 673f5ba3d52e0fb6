// OAuth 2.0 authorization code + PKCE (S256) for apps, compatible with Keycast's. A code works once and for
// 10 minutes; the token exchange creates the app's authorization, or updates the one the user already gave
// that app; refresh tokens rotate, and a replayed one kills its family. Every token response carries an
// authorization handle the app may send back to skip consent.
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { findByHandle, setAuthorizationHandle } from '../../database/queries/authorizations.js';
import { inTransaction } from '../../database/pool.js';
import {
  consumeCode,
  findRefreshForUpdate,
  insertCode,
  insertTokens,
  markRotated,
  revokeFamily,
  takePolledCode,
  type OAuthCodeRow,
} from '../../database/queries/oauth.js';
import type { Policy } from '../../database/queries/policies.js';
import { findPolicy } from '../../database/queries/policies.js';
import type { Queryable } from '../../database/pool.js';
import type { ApiContext } from '../context.js';
import { OAuthError } from '../errors.js';
import { isWellFormedOrigin } from '../safe-origin.js';
import { bunkerUrl, createAuthorization, evictEverywhere, loadPolicy } from './authorizations.js';
import { createByokAccount } from './byok.js';
import { warmAuthorizationKeys } from './key-prefetch.js';
import { hashToken, newToken } from './tokens.js';

export const CODE_TTL_MS = 10 * 60 * 1000;
export const ACCESS_TTL_S = 24 * 3600;
export const REFRESH_TTL_S = 90 * 24 * 3600;
/** Keycast's ceiling for silent re-authorization: a handle works for 30 days after the last consent. */
export const HANDLE_TTL_MS = 30 * 24 * 3600 * 1000;
/** The default policy when an app names none (Keycast's, and never full). */
export const DEFAULT_POLICY = 'social';

const invalidRequest = (msg: string) => new OAuthError(400, 'invalid_request', msg);
const invalidGrant = (msg: string) => new OAuthError(400, 'invalid_grant', msg);

/** The redirect URI with the given query parameters set (undefined ones left out). */
export function withParams(uri: string | URL, params: Record<string, string | undefined>): string {
  const url = new URL(uri);
  for (const [k, v] of Object.entries(params)) if (v !== undefined) url.searchParams.set(k, v);
  return url.toString();
}

/**
 * https anywhere, or http on localhost / 127.0.0.1 / [::1]; no fragment, no user info, and a host a
 * header can carry (the origin goes into the consent page's CSP, the whole URL into a Location).
 */
export function checkRedirectUri(uri: string): URL {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw invalidRequest('redirect_uri is not a valid URL');
  }
  const loopback = ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
  if (!(url.protocol === 'https:' || (url.protocol === 'http:' && loopback))) {
    throw invalidRequest('redirect_uri must be https, or http on localhost');
  }
  if (url.hash) throw invalidRequest('redirect_uri must not have a fragment');
  if (url.username || url.password) throw invalidRequest('redirect_uri must not carry a user name or password');
  if (!isWellFormedOrigin(url.origin))
    throw invalidRequest(
      'redirect_uri must have a plain host name (letters, digits, dots and hyphens) or an IP address',
    );
  return url;
}

/** `policy:<slug>` (the slug alone is accepted too); no scope means social. */
export function policySlugOfScope(scope: string | undefined): string {
  if (!scope?.trim()) return DEFAULT_POLICY;
  const match = /^(?:policy:)?([a-z0-9_-]{1,64})$/.exec(scope.trim());
  if (!match) throw new OAuthError(400, 'invalid_scope', 'scope must be policy:<slug>');
  return match[1]!;
}

export function pkceChallengeOf(verifier: string): string {
  return createHash('sha256').update(verifier).digest('base64url');
}

export interface AuthorizeInput {
  userId: string;
  clientId: string;
  redirectUri: string;
  scope?: string;
  /** The policy to grant when already decided (a silent re-authorization); wins over `scope`. */
  policySlug?: string;
  codeChallenge?: string;
  codeChallengeMethod?: string;
  /** The app's OAuth state: with PKCE, the code can also be fetched by GET /api/oauth/poll?state=. */
  state?: string;
}

/** A bring-your-own-key registration: no user yet; the code carries what the account will be made of. */
export interface PendingRegistration {
  byokPubkey: string;
  email: string;
  passwordHash: string;
}

export function checkPkce(codeChallenge: string | undefined, method: string | undefined): void {
  if (codeChallenge === undefined) return;
  if ((method ?? 'S256') !== 'S256') throw invalidRequest('code_challenge_method must be S256');
  if (!/^[A-Za-z0-9_-]{43}$/.test(codeChallenge)) throw invalidRequest('code_challenge must be a base64url SHA-256');
}

export async function issueCode(
  ctx: ApiContext,
  input: Omit<AuthorizeInput, 'userId'> & ({ userId: string } | { userId: null; pending: PendingRegistration }),
): Promise<string> {
  checkRedirectUri(input.redirectUri);
  const slug = input.policySlug ?? policySlugOfScope(input.scope);
  if (!(await findPolicy(ctx.db, slug, input.userId ?? undefined)))
    throw new OAuthError(400, 'invalid_scope', `unknown policy: ${slug}`);
  checkPkce(input.codeChallenge, input.codeChallengeMethod);
  const pending = input.userId === null ? input.pending : undefined;
  const code = newToken('code');
  await insertCode(ctx.db, hashToken(code), {
    userId: input.userId,
    clientId: input.clientId,
    redirectUri: input.redirectUri,
    policySlug: slug,
    codeChallenge: input.codeChallenge ?? null,
    codeChallengeMethod: input.codeChallenge !== undefined ? 'S256' : null,
    expiresAt: new Date(Date.now() + CODE_TTL_MS),
    byokPubkey: pending?.byokPubkey ?? null,
    pendingEmail: pending?.email ?? null,
    pendingPasswordHash: pending?.passwordHash ?? null,
    // Without PKCE a polled code would be usable by whoever guessed or saw the state.
    pollStateHash: input.state && input.codeChallenge !== undefined ? hashToken(input.state) : null,
  });
  return code;
}

/**
 * Keycast's silent re-authorization: a code for the authorization the handle names, under the policy the
 * user granted it, when the handle is this user's for this app and redirect origin, and still lasts.
 * Undefined otherwise (the caller shows consent).
 */
export async function silentReauthorization(
  ctx: ApiContext,
  input: Omit<AuthorizeInput, 'scope' | 'policySlug'> & { handle: string },
): Promise<string | undefined> {
  if (!/^[0-9a-f]{64}$/.test(input.handle)) return undefined;
  const redirectOrigin = checkRedirectUri(input.redirectUri).origin;
  const found = await findByHandle(ctx.db, hashToken(input.handle), {
    userId: input.userId,
    clientId: input.clientId,
    redirectOrigin,
  });
  if (!found) return undefined;
  return issueCode(ctx, { ...input, policySlug: found.policySlug });
}

/**
 * GET /api/oauth/poll: the code waiting for this state, once. The waiting code is ended and a fresh copy
 * issued, so no code is ever kept in a readable form.
 */
export async function pollCode(ctx: ApiContext, state: string): Promise<string | undefined> {
  return inTransaction(ctx.db, async (tx) => {
    const waiting: OAuthCodeRow | undefined = await takePolledCode(tx, hashToken(state));
    if (!waiting) return undefined;
    const code = newToken('code');
    await insertCode(tx, hashToken(code), { ...waiting, pollStateHash: null });
    return code;
  });
}

export interface TokenResponse {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  refresh_token: string;
  scope: string;
  bunker_url: string;
  policy: Policy;
  /** Sent back on GET /api/oauth/authorize, skips consent for this app (Keycast's silent re-authorization). */
  authorization_handle: string;
}

/** A new access and refresh token (a new family when `familyId` is new) for one authorization. */
export async function issueTokens(db: Queryable, authorizationId: string, familyId: string) {
  const access = newToken('access');
  const refresh = newToken('refresh');
  const now = Date.now();
  await insertTokens(db, {
    accessHash: hashToken(access),
    refreshHash: hashToken(refresh),
    authorizationId,
    familyId,
    accessExpiresAt: new Date(now + ACCESS_TTL_S * 1000),
    refreshExpiresAt: new Date(now + REFRESH_TTL_S * 1000),
  });
  return { access, refresh };
}

export async function exchangeCode(
  ctx: ApiContext,
  input: { code: string; clientId: string; redirectUri: string; codeVerifier?: string },
): Promise<TokenResponse> {
  const code = await consumeCode(ctx.db, hashToken(input.code));
  if (!code) throw invalidGrant('the code is unknown, used or expired');
  if (code.clientId !== input.clientId || code.redirectUri !== input.redirectUri) {
    throw invalidGrant('client_id or redirect_uri does not match the code');
  }
  if (code.codeChallenge !== null) {
    if (!input.codeVerifier) throw invalidGrant('code_verifier is required');
    const expected = Buffer.from(code.codeChallenge);
    const actual = Buffer.from(pkceChallengeOf(input.codeVerifier));
    if (expected.length !== actual.length || !timingSafeEqual(expected, actual))
      throw invalidGrant('code_verifier does not match');
  }
  // A bring-your-own-key registration becomes an account now, with the key the verifier carries.
  const userId = code.userId ?? (await createByokAccount(ctx, code, input.codeVerifier));
  const created = await createAuthorization(ctx, {
    userId,
    applicationName: code.clientId,
    policySlug: code.policySlug,
    clientId: code.clientId,
    redirectOrigin: new URL(code.redirectUri).origin,
    reuseApp: true,
  });
  const handle = newToken('handle');
  await setAuthorizationHandle(
    ctx.db,
    created.authorizationId,
    hashToken(handle),
    new Date(Date.now() + HANDLE_TTL_MS),
  );
  const { access, refresh } = await issueTokens(ctx.db, created.authorizationId, randomUUID());
  warmAuthorizationKeys(ctx, created.authorizationId);
  return {
    authorization_handle: handle,
    access_token: access,
    token_type: 'Bearer',
    expires_in: ACCESS_TTL_S,
    refresh_token: refresh,
    scope: `policy:${created.policy.slug}`,
    bunker_url: created.bunkerUrl,
    policy: created.policy,
  };
}

export async function refreshTokens(ctx: ApiContext, refreshToken: string): Promise<TokenResponse> {
  const refreshHash = hashToken(refreshToken);
  const outcome = await inTransaction(ctx.db, async (tx) => {
    const found = await findRefreshForUpdate(tx, refreshHash);
    if (!found) return { error: 'unknown refresh token' } as const;
    if (found.rotated) {
      await revokeFamily(tx, found.familyId);
      return {
        error: 'refresh token reused; every token of this grant is revoked',
        authorizationId: found.authorizationId,
      } as const;
    }
    if (found.revoked || found.authorizationRevoked) return { error: 'refresh token revoked' } as const;
    if (found.expired) return { error: 'refresh token expired' } as const;
    await markRotated(tx, found.accessHash);
    const tokens = await issueTokens(tx, found.authorizationId, found.familyId);
    // A new handle each time (the old one stops); its expiry stays that of the last consent.
    const handle = newToken('handle');
    await setAuthorizationHandle(tx, found.authorizationId, hashToken(handle));
    const { rows } = await tx.query<{ policy_slug: string; bunker_pubkey: string; relays: string[]; user_id: string }>(
      'SELECT policy_slug, bunker_pubkey, relays, user_id FROM authorizations WHERE id = $1',
      [found.authorizationId],
    );
    return { tokens, handle, authorizationId: found.authorizationId, auth: rows[0]! } as const;
  });
  if ('error' in outcome) {
    if (outcome.authorizationId)
      await evictEverywhere(ctx, { type: 'authorization', authorizationId: outcome.authorizationId });
    throw invalidGrant(outcome.error!);
  }
  // The rotated access token must stop at once, in every api process.
  await evictEverywhere(ctx, { type: 'authorization', authorizationId: outcome.authorizationId });
  warmAuthorizationKeys(ctx, outcome.authorizationId);
  const policy = await loadPolicy(ctx, outcome.auth.policy_slug, outcome.auth.user_id);
  return {
    access_token: outcome.tokens.access,
    token_type: 'Bearer',
    expires_in: ACCESS_TTL_S,
    refresh_token: outcome.tokens.refresh,
    scope: `policy:${policy.slug}`,
    // The connect secret is shown once, at the first exchange; it is stored only as a hash.
    bunker_url: bunkerUrl(outcome.auth.bunker_pubkey, outcome.auth.relays),
    policy,
    authorization_handle: outcome.handle,
  };
}
