// Changing a password: the current one re-entered (counted like a login), the new one hashed, and every
// other session of the account ended.
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
  if (input.newPassword === input.currentPassword) throw badRequest('the new password is the same as the current one');
  await setPasswordHash(ctx.db, input.user.id, await hashPassword(input.newPassword));
  await revokeUserSessions(ctx.db, input.user.id, hashToken(input.keepSession));
}
