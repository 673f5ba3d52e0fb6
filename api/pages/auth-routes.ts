// Log in, register and log out in the browser. Forms post back here; a login returns to `next`.
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Value } from '@sinclair/typebox/value';
import type { ApiContext } from '../context.js';
import { badRequest } from '../errors.js';
import { clearSessionCookie, sessionToken, sessionUser, setSessionCookie } from '../plugins/session.js';
import { csrfToken } from '../plugins/web-security.js';
import { Email } from '../schemas.js';
import { endSession } from '../services/accounts.js';
import { login, signUp } from '../services/login.js';
import { formError } from './forms.js';
import { safeNext } from './guard.js';
import { sendPage } from './layout.js';
import { loginPage, registerPage } from './views-auth.js';

const Next = Type.Optional(Type.String({ maxLength: 4096 }));
const Csrf = Type.String({ maxLength: 512 });
const LoginForm = Type.Object({
  email: Type.String({ maxLength: 254 }),
  password: Type.String({ maxLength: 1024 }),
  next: Next,
  _csrf: Csrf,
});
const RegisterForm = Type.Object({
  email: Type.String({ maxLength: 254 }),
  password: Type.String({ maxLength: 1024 }),
  nsec: Type.Optional(Type.String({ maxLength: 200 })),
  next: Next,
  _csrf: Csrf,
});

export const authPages: FastifyPluginAsyncTypebox<{ ctx: ApiContext }> = async (app, { ctx }) => {
  app.get('/', async (request, reply) => reply.redirect((await sessionUser(ctx, request)) ? '/account' : '/login', 303));

  app.get('/login', { schema: { querystring: Type.Object({ next: Next }) } }, async (request, reply) => {
    const next = safeNext(request.query.next);
    if (await sessionUser(ctx, request)) return reply.redirect(next, 303);
    return sendPage(reply, loginPage({ csrf: csrfToken(reply), next }));
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
      return sendPage(reply, loginPage({ csrf: csrfToken(reply), next, email, error: failure.message }), failure.statusCode);
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
      if (!Value.Check(Email, email)) throw badRequest('enter a valid email address');
      const { token } = await signUp(ctx, { email, password, nsec });
      setSessionCookie(ctx, reply, token);
      return reply.redirect(next, 303);
    } catch (err) {
      const failure = formError(err, reply);
      return sendPage(reply, registerPage({ csrf: csrfToken(reply), next, email, error: failure.message }), failure.statusCode);
    }
  });

  app.post('/logout', { schema: { body: Type.Object({ _csrf: Csrf }) } }, async (request, reply) => {
    const token = sessionToken(request);
    if (token && token.length <= 512) await endSession(ctx, token);
    clearSessionCookie(reply);
    return reply.redirect('/login', 303);
  });
};
