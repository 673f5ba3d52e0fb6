// Accounts: register (a generated or imported key), password checks, sessions.
import { randomUUID } from 'node:crypto';
import { hash as argon2Hash, verify as argon2Verify, Algorithm } from '@node-rs/argon2';
import { inTransaction, isUniqueViolation } from '../../database/pool.js';
import { insertSession, revokeSession } from '../../database/queries/sessions.js';
import { findUserByEmail, insertUser, setUserKey, type UserRow } from '../../database/queries/users.js';
import { generateSecretKey, getPublicKeyHex, parseSecretKey } from '../../shared/nostr/keys.js';
import type { ApiContext } from '../context.js';
import { badRequest, conflict } from '../errors.js';
import { hashToken, newToken } from './tokens.js';

export const SESSION_TTL_MS = 30 * 24 * 3600 * 1000;
const ARGON2 = { algorithm: Algorithm.Argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 };
/** Verified against when the email is unknown, so both failures cost the same time. */
let dummyHash: Promise<string> | undefined;

export function hashPassword(password: string): Promise<string> {
  return argon2Hash(password, ARGON2);
}

export async function verifyPassword(hash: string, password: string): Promise<boolean> {
  try {
    return await argon2Verify(hash, password);
  } catch {
    return false;
  }
}

export function validatePassword(password: string): void {
  if (password.length < 8) throw badRequest('password must be at least 8 characters', 'weak_password');
}

export async function register(
  ctx: ApiContext,
  input: { email: string; password: string; nsec?: string },
): Promise<{ userId: string; pubkey: string }> {
  validatePassword(input.password);
  let secretKey: Uint8Array;
  try {
    secretKey = input.nsec !== undefined ? parseSecretKey(input.nsec) : generateSecretKey();
  } catch {
    throw badRequest('invalid nsec: expected nsec1… or 64 hex characters of a valid secret key', 'invalid_nsec');
  }
  try {
    const pubkey = getPublicKeyHex(secretKey);
    const userId = randomUUID();
    const passwordHash = await hashPassword(input.password);
    await inTransaction(ctx.db, async (tx) => {
      await insertUser(tx, { id: userId, email: input.email, passwordHash, pubkey });
      const { keyId } = await ctx.keyStore.create(tx, 'user', userId, secretKey);
      await setUserKey(tx, userId, keyId);
    });
    return { userId, pubkey };
  } catch (err) {
    if (isUniqueViolation(err, 'users_email_lower')) throw conflict('email already registered', 'email_taken');
    if (isUniqueViolation(err, 'users_pubkey_key')) throw conflict('this key is already registered', 'key_taken');
    throw err;
  } finally {
    secretKey.fill(0);
  }
}

/** The user if the pair is right; undefined otherwise (the caller counts the failure). */
export async function checkLogin(ctx: ApiContext, email: string, password: string): Promise<UserRow | undefined> {
  const user = await findUserByEmail(ctx.db, email);
  if (!user) {
    dummyHash ??= hashPassword('not-a-real-password');
    await verifyPassword(await dummyHash, password);
    return undefined;
  }
  return (await verifyPassword(user.passwordHash, password)) ? user : undefined;
}

export async function createSession(ctx: ApiContext, userId: string): Promise<string> {
  const token = newToken('session');
  await insertSession(ctx.db, hashToken(token), userId, new Date(Date.now() + SESSION_TTL_MS));
  return token;
}

export async function endSession(ctx: ApiContext, token: string): Promise<void> {
  await revokeSession(ctx.db, hashToken(token));
}
