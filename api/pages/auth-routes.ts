// Log in, register and log out in the browser. Forms post back here; a login returns to `next`.
import { Type } from 'typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Value } from 'typebox/value';
import type { ApiContext } from '../context.js';
import type { HttpError } from '../errors.js';
import { clearSessionCookie, sessionToken, sessionUser, setSessionCookie } from '../plugins/session.js';
import { csrfToken } from '../plugins/web-security.js';
import { Email } from '../schemas.js';
import { endSession } from '../services/accounts.js';
import { login, signUp } from '../services/login.js';
import { FieldError, failedForm, formError, sentence } from './forms.js';
import { safeNext } from './guard.js';
import { sendPage } from './layout.js';
import { loginPage, registerPage, welcomePage } from './views-auth.js';

const Next = Type.Optional(Type.String({ maxLength: 4096 }));
const Csrf = Type.String({ maxLength: 512 });
const LoginForm = Type.Object({
  email: Type.String({ maxLength: 254 }),
  password: Type.String({ maxLength: 1024 }),
  next: Next,
  _csrf: Csrf,
});
/** On the way back to an app's consent (a session that ended while it was open): say which app waits. */
function returnIntro(next: string): string | undefined {
  const url = new URL(next, 'http://local');
  const app = url.pathname === '/api/oauth/authorize' ? url.searchParams.get('client_id') : null;
  return app ? `Log in again to answer ${app.slice(0, 200)}, which asks to use your Nostr key.` : undefined;
}

/** A sign-up refusal in plain words, on the field it is about. */
function registerMistake(err: HttpError): HttpError {
  if (err instanceof FieldError || err.statusCode === 429) return err;
  switch (err.reason) {
    case 'weak_password':
      return new FieldError('password', 'Use at least 8 characters for your password.');
    case 'invalid_nsec':
      return new FieldError(
        'nsec',
        'That is not a secret key: paste an nsec1… or 64 hex characters, or leave it empty.',
      );
    case 'email_taken':
      return new FieldError('email', 'There is already an account with this email. Log in instead.', 409);
    case 'key_taken':
      return new FieldError('nsec', 'This key already belongs to an account here.', 409);
    default:
      return err;
  }
}

const RegisterForm = Type.Object({
  email: Type.String({ maxLength: 254 }),
  password: Type.String({ maxLength: 1024 }),
  confirm_password: Type.Optional(Type.String({ maxLength: 1024 })),
  nsec: Type.Optional(Type.String({ maxLength: 200 })),
  next: Next,
  _csrf: Csrf,
});

export const authPages: FastifyPluginAsyncTypebox<{ ctx: ApiContext }> = async (app, { ctx }) => {
  // A first visit: what Keyfarm is and what to do next. A signed-in user goes to the account.
  app.get('/', async (request, reply) =>
    (await sessionUser(ctx, request)) ? reply.redirect('/account', 303) : sendPage(reply, welcomePage()),
  );

  app.get('/login', { schema: { querystring: Type.Object({ next: Next }) } }, async (request, reply) => {
    const next = safeNext(request.query.next);
    if (await sessionUser(ctx, request)) return reply.redirect(next, 303);
    return sendPage(reply, loginPage({ csrf: csrfToken(reply), next, intro: returnIntro(next) }));
  });

  app.post('/login', { schema: { body: LoginForm } }, async (request, reply) => {
    const { email, password } = request.body;
    const next = safeNext(request.body.next);
    try {
      const { token } = await login(ctx, email, password, request.ip);
      setSessionCookie(ctx, reply, token);
      return reply.redirect(next, 303);
    } catch (err) {
      const failure = formError(err, reply);
      const message = failure.statusCode === 401 ? 'The email or the password is wrong.' : failure.message;
      const form = { values: { email }, error: sentence(message) };
      return sendPage(reply, loginPage({ csrf: csrfToken(reply), next, form }), failure.statusCode);
    }
  });

  app.get('/register', { schema: { querystring: Type.Object({ next: Next }) } }, async (request, reply) => {
    const next = safeNext(request.query.next);
    return sendPage(reply, registerPage({ csrf: csrfToken(reply), next }));
  });

  app.post('/register', { schema: { body: RegisterForm } }, async (request, reply) => {
    const { email, password } = request.body;
    const nsec = request.body.nsec?.trim() || undefined;
    const next = safeNext(request.body.next);
    try {
      if (!Value.Check(Email, email)) throw new FieldError('email', 'Enter an email address, like name@example.com.');
      if (password.length < 8) throw new FieldError('password', 'Use at least 8 characters for your password.');
      if (password !== request.body.confirm_password)
        throw new FieldError('confirm_password', "The two passwords don't match.");
      const { token } = await signUp(ctx, { email, password, nsec });
      setSessionCookie(ctx, reply, token);
      return reply.redirect(next, 303);
    } catch (err) {
      const failure = registerMistake(formError(err, reply));
      return sendPage(
        reply,
        registerPage({ csrf: csrfToken(reply), next, form: failedForm(failure, { email }) }),
        failure.statusCode,
      );
    }
  });

  app.post('/logout', { schema: { body: Type.Object({ _csrf: Csrf }) } }, async (request, reply) => {
    const token = sessionToken(request);
    if (token && token.length <= 512) await endSession(ctx, token);
    clearSessionCookie(reply);
    return reply.redirect('/login', 303);
  });
};
