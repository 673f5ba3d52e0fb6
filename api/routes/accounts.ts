import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { findUserById } from '../../database/queries/users.js';
import { metrics } from '../../shared/metrics.js';
import { npubEncode } from '../../shared/nostr/keys.js';
import type { ApiContext } from '../context.js';
import { HttpError, notFound } from '../errors.js';
import { checkLogin, createSession, endSession, register } from '../services/accounts.js';
import { clearSessionCookie, requireSession, sessionToken, setSessionCookie } from '../plugins/session.js';
import { Email, ErrorBody, Password } from '../schemas.js';

const Credentials = Type.Object({ email: Email, password: Password }, { additionalProperties: false });
const Registration = Type.Object(
  { email: Email, password: Password, nsec: Type.Optional(Type.String({ maxLength: 200 })) },
  { additionalProperties: false },
);
const SessionBody = Type.Object({ pubkey: Type.String(), token: Type.String() });

export const accountRoutes: FastifyPluginAsyncTypebox<{ ctx: ApiContext }> = async (app, { ctx }) => {
  app.post('/api/auth/register', {
    schema: { body: Registration, response: { 201: SessionBody, '4xx': ErrorBody } },
  }, async (request, reply) => {
    const { userId, pubkey } = await register(ctx, request.body);
    metrics.registrations.inc();
    const token = await createSession(ctx, userId);
    setSessionCookie(ctx, reply, token);
    return reply.status(201).send({ pubkey, token });
  });

  app.post('/api/auth/login', {
    schema: { body: Credentials, response: { 200: SessionBody, '4xx': ErrorBody } },
  }, async (request, reply) => {
    const { email, password } = request.body;
    const wait = await ctx.loginLimiter.retryAfter(email, request.ip);
    if (wait > 0) {
      metrics.loginFailures.inc({ reason: 'rate_limited' });
      throw new HttpError(429, 'too many failed logins; try again later', { 'retry-after': String(wait) });
    }
    const user = await checkLogin(ctx, email, password);
    if (!user) {
      await ctx.loginLimiter.fail(email, request.ip);
      metrics.loginFailures.inc({ reason: 'bad_credentials' });
      throw new HttpError(401, 'wrong email or password');
    }
    await ctx.loginLimiter.succeed(email, request.ip);
    metrics.logins.inc();
    const token = await createSession(ctx, user.id);
    setSessionCookie(ctx, reply, token);
    return { pubkey: user.pubkey, token };
  });

  app.post('/api/auth/logout', {
    schema: { response: { 200: Type.Object({ ok: Type.Boolean() }) } },
  }, async (request, reply) => {
    const token = sessionToken(request);
    if (token && token.length <= 512) await endSession(ctx, token);
    clearSessionCookie(reply);
    return { ok: true };
  });

  app.get('/api/user/account', {
    preHandler: requireSession(ctx),
    schema: { response: { 200: Type.Object({ email: Type.String(), pubkey: Type.String(), npub: Type.String() }), '4xx': ErrorBody } },
  }, async (request) => {
    const user = await findUserById(ctx.db, request.userId!);
    if (!user) throw notFound('no such account');
    return { email: user.email, pubkey: user.pubkey, npub: npubEncode(user.pubkey) };
  });
};
