// Email verification and password reset over JSON, in Keycast's shapes (docs/KEYCAST.md): verify-email,
// resend-verification, forgot-password, reset-password; and a signed-in user's change of address.
import { Type } from 'typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { findUserById } from '../../database/queries/users.js';
import type { ApiContext } from '../context.js';
import { notFound } from '../errors.js';
import { requireSession, sessionUser } from '../plugins/session.js';
import { Email, ErrorBody, Password } from '../schemas.js';
import {
  changeEmail,
  resendVerificationByEmail,
  resendVerificationForUser,
  verifyEmail,
} from '../services/email-verification.js';
import { requestPasswordReset, resetPassword } from '../services/password-reset.js';

/** A mailed link's token: letters, digits, `_` and `-` (ours are `kfv_`/`kfp_` and 43 base64url characters). */
export const MailedToken = Type.String({ minLength: 1, maxLength: 256, pattern: '^[A-Za-z0-9_-]+$' });
const Outcome = Type.Object({ success: Type.Boolean(), message: Type.String() });

export const RESET_REQUESTED = 'If an account exists with that email, a password reset link has been sent.';
export const VERIFICATION_REQUESTED =
  'If this email is registered and not yet confirmed, a confirmation link has been sent.';

export const emailRoutes: FastifyPluginAsyncTypebox<{ ctx: ApiContext }> = async (app, { ctx }) => {
  app.post(
    '/api/auth/verify-email',
    {
      schema: {
        body: Type.Object({ token: MailedToken }, { additionalProperties: false }),
        response: { 200: Outcome, '4xx': ErrorBody },
      },
    },
    async (request) => {
      await verifyEmail(ctx, request.body.token);
      return { success: true, message: 'Your email address is confirmed.' };
    },
  );

  // With a session: for its account. Without: for the address in the body, with the same answer either way.
  app.post(
    '/api/auth/resend-verification',
    {
      schema: {
        body: Type.Object({ email: Type.Optional(Email) }, { additionalProperties: false }),
        response: { 200: Outcome, '4xx': ErrorBody },
      },
    },
    async (request) => {
      const userId = await sessionUser(ctx, request);
      if (userId) await resendVerificationForUser(ctx, userId);
      else if (request.body.email !== undefined) await resendVerificationByEmail(ctx, request.body.email);
      return { success: true, message: VERIFICATION_REQUESTED };
    },
  );

  app.post(
    '/api/auth/forgot-password',
    {
      schema: {
        body: Type.Object({ email: Email }, { additionalProperties: false }),
        response: { 200: Outcome, '4xx': ErrorBody },
      },
    },
    async (request) => {
      await requestPasswordReset(ctx, request.body.email);
      return { success: true, message: RESET_REQUESTED };
    },
  );

  app.post(
    '/api/auth/reset-password',
    {
      schema: {
        body: Type.Object({ token: MailedToken, new_password: Password }, { additionalProperties: false }),
        response: { 200: Outcome, '4xx': ErrorBody },
      },
    },
    async (request) => {
      await resetPassword(ctx, request.body.token, request.body.new_password);
      return {
        success: true,
        message: 'Your password is changed and every session of the account has ended: log in with the new password.',
      };
    },
  );

  app.post(
    '/api/user/change-email',
    {
      preHandler: requireSession(ctx),
      schema: {
        body: Type.Object({ email: Email, password: Password }, { additionalProperties: false }),
        response: { 200: Outcome, '4xx': ErrorBody },
      },
    },
    async (request) => {
      const user = await findUserById(ctx.db, request.userId!);
      if (!user) throw notFound('no such account');
      await changeEmail(ctx, { user, password: request.body.password, newEmail: request.body.email, ip: request.ip });
      return { success: true, message: 'The address is changed; a confirmation link was mailed to it.' };
    },
  );
};
