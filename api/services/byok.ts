// Bring your own key, as keycast-login does it: the app puts the user's public key on the authorize URL
// (`byok_pubkey`) and the secret key in its PKCE verifier (`{random}.{nsec}`). The user registers (email,
// password) for that public key; the code carries the registration, and the account is made at token
// exchange, with the verifier's key, only if that key is the one `byok_pubkey` named.
import { randomUUID } from 'node:crypto';
import { Value } from 'typebox/value';
import { inTransaction, isUniqueViolation, type Queryable } from '../../database/pool.js';
import type { OAuthCodeRow } from '../../database/queries/oauth.js';
import { findUserByEmail, insertUser, setUserKey } from '../../database/queries/users.js';
import { getPublicKeyHex, parseSecretKey } from '../../shared/nostr/keys.js';
import type { ApiContext } from '../context.js';
import { OAuthError, badRequest, conflict } from '../errors.js';
import { Email } from '../schemas.js';
import { hashPassword, validatePassword } from './accounts.js';
import { checkRedirectUri, issueCode } from './oauth.js';
import { sendVerification } from './email-verification.js';

export const BYOK_PUBKEY = /^[0-9a-f]{64}$/;

export interface ByokRegistration {
  email: string;
  password: string;
  byokPubkey: string;
  clientId: string;
  redirectUri: string;
  scope?: string;
  codeChallenge?: string;
  codeChallengeMethod?: string;
  state?: string;
}

async function pubkeyRegistered(db: Queryable, pubkey: string): Promise<boolean> {
  const { rowCount } = await db.query('SELECT 1 FROM users WHERE pubkey = $1', [pubkey]);
  return (rowCount ?? 0) > 0;
}

/** Checks the registration and returns a code for it; nothing is created until the token exchange. */
export async function registerByok(ctx: ApiContext, r: ByokRegistration): Promise<string> {
  checkRedirectUri(r.redirectUri);
  if (!BYOK_PUBKEY.test(r.byokPubkey)) throw badRequest('byok_pubkey must be 64 lowercase hex characters');
  // The secret key travels in the verifier: without a challenge there is nothing to carry it.
  if (r.codeChallenge === undefined) throw badRequest('bring-your-own-key needs PKCE (code_challenge with S256)');
  if (!Value.Check(Email, r.email)) throw badRequest('enter a valid email address');
  validatePassword(r.password);
  if (await findUserByEmail(ctx.db, r.email)) throw conflict('email already registered', 'email_taken');
  if (await pubkeyRegistered(ctx.db, r.byokPubkey))
    throw conflict('this key is already registered: log in instead', 'key_taken');
  const passwordHash = await hashPassword(r.password);
  return issueCode(ctx, {
    userId: null,
    pending: { byokPubkey: r.byokPubkey, email: r.email, passwordHash },
    clientId: r.clientId,
    redirectUri: r.redirectUri,
    scope: r.scope,
    codeChallenge: r.codeChallenge,
    codeChallengeMethod: r.codeChallengeMethod,
    state: r.state,
  });
}

const invalidGrant = (msg: string) => new OAuthError(400, 'invalid_grant', msg);

/** The secret key after the first '.' of the verifier, as Keycast reads it; undefined when there is none. */
function keyOfVerifier(verifier: string | undefined): Uint8Array | undefined {
  const dot = verifier?.indexOf('.') ?? -1;
  if (dot < 0) return undefined;
  try {
    return parseSecretKey(verifier!.slice(dot + 1));
  } catch {
    return undefined;
  }
}

/** Makes the account of a bring-your-own-key code (already consumed and PKCE-checked); returns its id. */
export async function createByokAccount(
  ctx: ApiContext,
  code: OAuthCodeRow,
  verifier: string | undefined,
): Promise<string> {
  if (!code.byokPubkey || !code.pendingEmail || !code.pendingPasswordHash)
    throw invalidGrant('the code has no registration');
  const secretKey = keyOfVerifier(verifier);
  if (!secretKey) throw invalidGrant('code_verifier carries no valid secret key ({random}.{nsec})');
  try {
    if (getPublicKeyHex(secretKey) !== code.byokPubkey)
      throw invalidGrant('the key in code_verifier does not match byok_pubkey');
    const userId = randomUUID();
    const { pendingEmail: email, pendingPasswordHash: passwordHash, byokPubkey: pubkey } = code;
    await inTransaction(ctx.db, async (tx) => {
      await insertUser(tx, { id: userId, email, passwordHash, pubkey });
      const { keyId } = await ctx.keyStore.create(tx, 'user', userId, secretKey);
      await setUserKey(tx, userId, keyId);
    });
    await sendVerification(ctx, { id: userId, email });
    return userId;
  } catch (err) {
    if (isUniqueViolation(err, 'users_email_lower')) throw invalidGrant('email already registered');
    if (isUniqueViolation(err, 'users_pubkey_key')) throw invalidGrant('this key is already registered');
    throw err;
  } finally {
    secretKey.fill(0);
  }
}
