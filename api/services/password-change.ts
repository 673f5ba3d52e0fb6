// Changing a password: the current one re-entered (counted like a login), the new one hashed, every other
// session of the account ended and any password reset link cancelled.
import { inTransaction } from '../../database/pool.js';
import { deleteEmailTokens } from '../../database/queries/email-tokens.js';
import { revokeUserSessions } from '../../database/queries/sessions.js';
import { setPasswordHash, type UserRow } from '../../database/queries/users.js';
import type { ApiContext } from '../context.js';
import { badRequest } from '../errors.js';
import { hashPassword, validatePassword } from './accounts.js';
import { checkPasswordLimited } from './login.js';
import { hashToken } from './tokens.js';

export async function changePassword(
  ctx: ApiContext,
  input: { user: UserRow; currentPassword: string; newPassword: string; keepSession: string; ip: string },
): Promise<void> {
  await checkPasswordLimited(ctx, input.user.email, input.currentPassword, input.ip);
  validatePassword(input.newPassword);
  if (input.newPassword === input.currentPassword)
    throw badRequest('the new password is the same as the current one', 'same_password');
  const passwordHash = await hashPassword(input.newPassword);
  await inTransaction(ctx.db, async (tx) => {
    await setPasswordHash(tx, input.user.id, passwordHash);
    await revokeUserSessions(tx, input.user.id, hashToken(input.keepSession));
    await deleteEmailTokens(tx, input.user.id, 'reset');
  });
}
