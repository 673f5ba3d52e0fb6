// The pages a mailed link opens, and the form that asks for a reset link. None needs a session. A link's
// token travels in the query string, which the request log leaves out.
import { Type } from 'typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Value } from 'typebox/value';
import type { ApiContext } from '../context.js';
import { clearSessionCookie, sessionUser } from '../plugins/session.js';
import { csrfToken } from '../plugins/web-security.js';
import { MailedToken } from '../routes/email.js';
import { Email } from '../schemas.js';
import { INVALID_VERIFICATION_LINK, verifyEmail } from '../services/email-verification.js';
import {
  INVALID_RESET_LINK,
  requestPasswordReset,
  resetLinkIsLive,
  resetPassword,
} from '../services/password-reset.js';
import { FieldError, failedForm, formError, sentence } from './forms.js';
import { sendPage } from './layout.js';
import {
  emailVerifiedPage,
  forgotPasswordPage,
  linkFailedPage,
  passwordResetDonePage,
  resetPasswordPage,
  resetRequestedPage,
} from './views-email.js';

const Csrf = Type.String({ maxLength: 512 });
/** Any string, checked against MailedToken in the handler so a mangled link gets the page, not a bare 400. */
const LinkToken = Type.Optional(Type.String({ maxLength: 1024 }));

const isToken = (token: string | undefined): token is string => token !== undefined && Value.Check(MailedToken, token);
const resetLinkFailed = () =>
  linkFailedPage('This link no longer works', sentence(INVALID_RESET_LINK), {
    href: '/forgot-password',
    label: 'Ask for a new link',
  });

export const emailPages: FastifyPluginAsyncTypebox<{ ctx: ApiContext }> = async (app, { ctx }) => {
  const outbox = ctx.mailer.outbox;

  app.get('/forgot-password', async (_request, reply) => sendPage(reply, forgotPasswordPage(csrfToken(reply), outbox)));

  app.post(
    '/forgot-password',
    { schema: { body: Type.Object({ email: Type.String({ maxLength: 254 }), _csrf: Csrf }) } },
    async (request, reply) => {
      const email = request.body.email.trim();
      try {
        if (!Value.Check(Email, email)) throw new FieldError('email', 'Enter an email address, like name@example.com.');
        await requestPasswordReset(ctx, email);
        return sendPage(reply, resetRequestedPage(outbox));
      } catch (err) {
        const failure = formError(err, reply);
        return sendPage(
          reply,
          forgotPasswordPage(csrfToken(reply), outbox, failedForm(failure, { email })),
          failure.statusCode,
        );
      }
    },
  );

  // Showing the form does not use the link (mail scanners open links); posting it does.
  app.get('/reset-password', { schema: { querystring: Type.Object({ token: LinkToken }) } }, async (request, reply) => {
    const token = request.query.token;
    if (!isToken(token) || !(await resetLinkIsLive(ctx, token))) return sendPage(reply, resetLinkFailed(), 400);
    return sendPage(reply, resetPasswordPage(csrfToken(reply), token));
  });

  app.post(
    '/reset-password',
    {
      schema: {
        body: Type.Object({
          token: Type.String({ maxLength: 1024 }),
          new_password: Type.String({ maxLength: 1024 }),
          confirm_password: Type.String({ maxLength: 1024 }),
          _csrf: Csrf,
        }),
      },
    },
    async (request, reply) => {
      const { token, new_password: password } = request.body;
      if (!isToken(token)) return sendPage(reply, resetLinkFailed(), 400);
      try {
        if (password.length < 8)
          throw new FieldError('new_password', 'Use at least 8 characters for the new password.');
        if (password !== request.body.confirm_password)
          throw new FieldError('confirm_password', "The two passwords don't match.");
        await resetPassword(ctx, token, password);
      } catch (err) {
        const failure = formError(err, reply);
        if (failure.reason === 'invalid_reset_link') return sendPage(reply, resetLinkFailed(), 400);
        return sendPage(reply, resetPasswordPage(csrfToken(reply), token, failedForm(failure, {})), failure.statusCode);
      }
      // Every session ended, this browser's too.
      clearSessionCookie(reply);
      return sendPage(reply, passwordResetDonePage());
    },
  );

  // A confirmation link is used when opened: it only proves the mail arrived, which opening it shows.
  app.get('/verify-email', { schema: { querystring: Type.Object({ token: LinkToken }) } }, async (request, reply) => {
    const signedIn = (await sessionUser(ctx, request)) !== undefined;
    const failed = linkFailedPage(
      'This link no longer works',
      sentence(INVALID_VERIFICATION_LINK),
      signedIn ? { href: '/account', label: 'Back to your account' } : { href: '/login', label: 'Log in' },
    );
    const token = request.query.token;
    if (!isToken(token)) return sendPage(reply, failed, 400);
    try {
      await verifyEmail(ctx, token);
    } catch (err) {
      formError(err, reply);
      return sendPage(reply, failed, 400);
    }
    return sendPage(reply, emailVerifiedPage(signedIn));
  });
};
