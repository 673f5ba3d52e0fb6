// Confirming the account's email address: a one-time link mailed at registration, on an email change and on
// request. An unconfirmed account works as usual except for key export. The link confirms the address it was
// mailed to, and only while that is still the account's address.
import { setTimeout as sleep } from 'node:timers/promises';
import { inTransaction, isUniqueViolation } from '../../database/pool.js';
import { deleteEmailTokens, replaceEmailToken, spendEmailToken } from '../../database/queries/email-tokens.js';
import {
  findUserByEmail,
  findUserById,
  markEmailVerified,
  setUserEmail,
  type UserRow,
} from '../../database/queries/users.js';
import type { ApiContext } from '../context.js';
import { badRequest, conflict } from '../errors.js';
import { checkPasswordLimited } from './login.js';
import { mayMail } from './mail-quota.js';
import { hashToken, newToken } from './tokens.js';

/** Answers that may or may not have mailed someone take at least this long, whatever happened. */
export const MIN_ANSWER_MS = 300;

export const INVALID_VERIFICATION_LINK =
  'this confirmation link is invalid, already used or expired: ask for a new one on your account page';

/** Runs `work`, then waits until MIN_ANSWER_MS have passed since `started` (also when it failed). */
export async function answerNoSoonerThan<T>(work: () => Promise<T>, started = performance.now()): Promise<T> {
  try {
    return await work();
  } finally {
    const left = MIN_ANSWER_MS - (performance.now() - started);
    if (left > 0) await sleep(left);
  }
}

export function verificationLink(ctx: ApiContext, token: string): string {
  return `${ctx.config.PUBLIC_URL}/verify-email?token=${encodeURIComponent(token)}`;
}

/** A new link for the account's address (older ones stop working) and its mail; no quota check. */
async function issueVerification(ctx: ApiContext, user: Pick<UserRow, 'id' | 'email'>): Promise<void> {
  const token = newToken('email-verify');
  const hours = ctx.config.EMAIL_VERIFICATION_TTL_HOURS;
  await replaceEmailToken(ctx.db, {
    tokenHash: hashToken(token),
    userId: user.id,
    purpose: 'verify',
    email: user.email,
    expiresAt: new Date(Date.now() + hours * 3600_000),
  });
  ctx.mailer.deliver({
    kind: 'verify',
    to: user.email,
    subject: 'Confirm your email address for Keyfarm',
    text: [
      'Hello,',
      '',
      `Please confirm that ${user.email} is the address of your Keyfarm account by opening this link:`,
      '',
      verificationLink(ctx, token),
      '',
      `The link works once, for ${hours} hour${hours === 1 ? '' : 's'}. Until the address is confirmed, your account works`,
      'as usual, but you cannot export your secret key.',
      '',
      'If you did not create a Keyfarm account, you can ignore this message.',
    ].join('\n'),
  });
}

/** Mails a confirmation link to the account's address, unless the address had its share of mail already. */
export async function sendVerification(ctx: ApiContext, user: Pick<UserRow, 'id' | 'email'>): Promise<void> {
  if (await mayMail(ctx, user.email)) await issueVerification(ctx, user);
}

/** Uses a confirmation link. 400 when it is unknown, used, expired, or for an address the account no longer has. */
export async function verifyEmail(ctx: ApiContext, token: string): Promise<{ userId: string }> {
  const spent = await spendEmailToken(ctx.db, hashToken(token), 'verify');
  if (!spent) throw badRequest(INVALID_VERIFICATION_LINK);
  const user = await findUserById(ctx.db, spent.userId);
  if (!user || user.email.toLowerCase() !== spent.email.toLowerCase()) throw badRequest(INVALID_VERIFICATION_LINK);
  await markEmailVerified(ctx.db, user.id, spent.email);
  return { userId: user.id };
}

/** A new link for a signed-in user whose address is not confirmed; nothing when it is. */
export async function resendVerificationForUser(ctx: ApiContext, userId: string): Promise<void> {
  const user = await findUserById(ctx.db, userId);
  if (user && !user.emailVerifiedAt) await sendVerification(ctx, user);
}

/**
 * A new link for whoever has `email`, asked without a session (Keycast's resend form). The same answer, in
 * about the same time, whether or not an account has the address and whether or not it is confirmed.
 */
export async function resendVerificationByEmail(ctx: ApiContext, email: string): Promise<void> {
  await answerNoSoonerThan(async () => {
    const allowed = await mayMail(ctx, email);
    const user = await findUserByEmail(ctx.db, email);
    if (allowed && user && !user.emailVerifiedAt) await issueVerification(ctx, user);
  });
}

/**
 * A new address for the account, after the password is re-entered (counted like a login). The address is
 * unconfirmed until its link is used; links mailed to the old address stop working, and the old address is
 * told of the change.
 */
export async function changeEmail(
  ctx: ApiContext,
  input: { user: UserRow; password: string; newEmail: string; ip: string },
): Promise<void> {
  const newEmail = input.newEmail.trim();
  await checkPasswordLimited(ctx, input.user.email, input.password, input.ip);
  if (newEmail.toLowerCase() === input.user.email.toLowerCase())
    throw badRequest('that is already the address of your account', 'same_email');
  try {
    await inTransaction(ctx.db, async (tx) => {
      await setUserEmail(tx, input.user.id, newEmail);
      await deleteEmailTokens(tx, input.user.id);
    });
  } catch (err) {
    if (isUniqueViolation(err, 'users_email_lower')) throw conflict('email already registered', 'email_taken');
    throw err;
  }
  await sendVerification(ctx, { id: input.user.id, email: newEmail });
  if (await mayMail(ctx, input.user.email)) {
    ctx.mailer.deliver({
      kind: 'email-changed',
      to: input.user.email,
      subject: 'The email address of your Keyfarm account was changed',
      text: [
        'Hello,',
        '',
        `The email address of your Keyfarm account was changed from ${input.user.email} to ${newEmail}.`,
        '',
        'If you did not do this, someone who knows your password may have. Contact the operator of this Keyfarm.',
      ].join('\n'),
    });
  }
}
