import { Type } from 'typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { findUserById } from '../../database/queries/users.js';
import { npubEncode } from '../../shared/nostr/keys.js';
import type { ApiContext } from '../context.js';
import { notFound } from '../errors.js';
import { endSession } from '../services/accounts.js';
import { login, signUp } from '../services/login.js';
import { clearSessionCookie, requireSession, sessionToken, setSessionCookie } from '../plugins/session.js';
import { Email, ErrorBody, Password } from '../schemas.js';

const Credentials = Type.Object({ email: Email, password: Password }, { additionalProperties: false });
const Registration = Type.Object(
  { email: Email, password: Password, nsec: Type.Optional(Type.String({ maxLength: 200 })) },
  { additionalProperties: false },
);
const SessionBody = Type.Object({ pubkey: Type.String(), token: Type.String() });

export const accountRoutes: FastifyPluginAsyncTypebox<{ ctx: ApiContext }> = async (app, { ctx }) => {
  app.post(
    '/api/auth/register',
    {
      schema: { body: Registration, response: { 201: SessionBody, '4xx': ErrorBody } },
    },
    async (request, reply) => {
      const { pubkey, token } = await signUp(ctx, request.body);
      setSessionCookie(ctx, reply, token);
      return reply.status(201).send({ pubkey, token });
    },
  );

  app.post(
    '/api/auth/login',
    {
      schema: { body: Credentials, response: { 200: SessionBody, '4xx': ErrorBody } },
    },
    async (request, reply) => {
      const { user, token } = await login(ctx, request.body.email, request.body.password, request.ip);
      setSessionCookie(ctx, reply, token);
      return { pubkey: user.pubkey, token };
    },
  );

  app.post(
    '/api/auth/logout',
    {
      schema: { response: { 200: Type.Object({ ok: Type.Boolean() }) } },
    },
    async (request, reply) => {
      const token = sessionToken(request);
      if (token && token.length <= 512) await endSession(ctx, token);
      clearSessionCookie(reply);
      return { ok: true };
    },
  );

  app.get(
    '/api/user/account',
    {
      preHandler: requireSession(ctx),
      schema: {
        response: {
          200: Type.Object({
            email: Type.String(),
            email_verified: Type.Boolean(),
            pubkey: Type.String(),
            public_key: Type.String(),
            npub: Type.String(),
          }),
          '4xx': ErrorBody,
        },
      },
    },
    async (request) => {
      const user = await findUserById(ctx.db, request.userId!);
      if (!user) throw notFound('no such account');
      // public_key and email_verified: Keycast's names for the same account status.
      return {
        email: user.email,
        email_verified: user.emailVerifiedAt !== null,
        pubkey: user.pubkey,
        public_key: user.pubkey,
        npub: npubEncode(user.pubkey),
      };
    },
  );
};
