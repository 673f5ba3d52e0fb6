// Password reset by a mailed link: single use, valid one hour, replaced by a newer one and cancelled by a
// password change. A reset ends every session of the account. Asking for a link gets the same answer, in
// about the same time, whether or not an account has the address.
import { inTransaction } from '../../database/pool.js';
import {
  deleteEmailTokens,
  emailTokenIsLive,
  replaceEmailToken,
  spendEmailToken,
} from '../../database/queries/email-tokens.js';
import { revokeUserSessions } from '../../database/queries/sessions.js';
import { findUserByEmail, markEmailVerified, setPasswordHash } from '../../database/queries/users.js';
import type { ApiContext } from '../context.js';
import { badRequest } from '../errors.js';
import { hashPassword, validatePassword } from './accounts.js';
import { answerNoSoonerThan } from './email-verification.js';
import { mayMail } from './mail-quota.js';
import { hashToken, newToken } from './tokens.js';

export const RESET_TTL_MS = 3600_000;
export const INVALID_RESET_LINK = 'this password reset link is invalid, already used or expired: ask for a new one';

export function resetLink(ctx: ApiContext, token: string): string {
  return `${ctx.config.PUBLIC_URL}/reset-password?token=${encodeURIComponent(token)}`;
}

/** Mails a reset link when an account has `email` and the address may receive mail; otherwise nothing. */
export async function requestPasswordReset(ctx: ApiContext, email: string): Promise<void> {
  await answerNoSoonerThan(async () => {
    // Counted first, for every address asked about: the count says nothing about accounts.
    const allowed = await mayMail(ctx, email);
    const user = await findUserByEmail(ctx.db, email);
    if (!user || !allowed) return;
    const token = newToken('password-reset');
    await replaceEmailToken(ctx.db, {
      tokenHash: hashToken(token),
      userId: user.id,
      purpose: 'reset',
      email: user.email,
      expiresAt: new Date(Date.now() + RESET_TTL_MS),
    });
    ctx.mailer.deliver({
      kind: 'reset',
      to: user.email,
      subject: 'Reset your Keyfarm password',
      text: [
        'Hello,',
        '',
        'Someone (we hope you) asked to reset the password of the Keyfarm account with this address.',
        'To choose a new password, open this link:',
        '',
        resetLink(ctx, token),
        '',
        'The link works once, for one hour; asking again makes a new link and this one stops working.',
        'Resetting the password logs you out everywhere. Your Nostr key and connected apps stay as they are.',
        '',
        'If you did not ask for this, ignore this message: your password stays as it is.',
      ].join('\n'),
    });
  });
}

/** Whether a reset link can still be used (the form is shown only for one that can). */
export function resetLinkIsLive(ctx: ApiContext, token: string): Promise<boolean> {
  return emailTokenIsLive(ctx.db, hashToken(token), 'reset');
}

/**
 * Uses a reset link: the new password, every session ended, any other reset link cancelled. The link proves
 * the user reads the account's mailbox, so an address not yet confirmed becomes confirmed.
 */
export async function resetPassword(ctx: ApiContext, token: string, newPassword: string): Promise<void> {
  validatePassword(newPassword);
  const tokenHash = hashToken(token);
  // Checked before the (costly) password hash, so unknown links cost no hashing; used atomically below.
  if (!(await emailTokenIsLive(ctx.db, tokenHash, 'reset'))) throw badRequest(INVALID_RESET_LINK, 'invalid_reset_link');
  const passwordHash = await hashPassword(newPassword);
  await inTransaction(ctx.db, async (tx) => {
    const spent = await spendEmailToken(tx, tokenHash, 'reset');
    if (!spent) throw badRequest(INVALID_RESET_LINK, 'invalid_reset_link');
    await setPasswordHash(tx, spent.userId, passwordHash);
    await revokeUserSessions(tx, spent.userId);
    await deleteEmailTokens(tx, spent.userId, 'reset');
    await markEmailVerified(tx, spent.userId, spent.email);
  });
}
