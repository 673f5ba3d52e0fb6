import { Type } from 'typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import type { ApiContext } from '../context.js';
import { OAuthError } from '../errors.js';
import { requireSession } from '../plugins/session.js';
import { registerByok } from '../services/byok.js';
import { checkRedirectUri, exchangeCode, issueCode, pollCode, refreshTokens, withParams } from '../services/oauth.js';
import { formError } from '../pages/forms.js';
import { sendPage } from '../pages/layout.js';
import { byokRegisterPage } from '../pages/views-byok.js';

const Str = (max = 2048) => Type.String({ minLength: 1, maxLength: max });

const AuthorizeBody = Type.Object({
  client_id: Str(200),
  redirect_uri: Str(),
  scope: Type.Optional(Type.String({ maxLength: 200 })),
  approved: Type.Union([Type.Boolean(), Type.Literal('true'), Type.Literal('false')]),
  code_challenge: Type.Optional(Str(128)),
  code_challenge_method: Type.Optional(Str(16)),
  state: Type.Optional(Type.String({ maxLength: 1024 })),
});

const TokenBody = Type.Union([
  Type.Object({
    // Optional, as Keycast has it: a body without one is an authorization_code grant.
    grant_type: Type.Optional(Type.Literal('authorization_code')),
    code: Str(200),
    client_id: Str(200),
    redirect_uri: Str(),
    code_verifier: Type.Optional(Type.String({ minLength: 43, maxLength: 128, pattern: '^[A-Za-z0-9._~-]+$' })),
  }),
  Type.Object({ grant_type: Type.Literal('refresh_token'), refresh_token: Str(200) }),
]);

const OAuthErrorBody = Type.Object({ error: Type.String(), error_description: Type.Optional(Type.String()) });
const TokenResponseBody = Type.Object({
  access_token: Type.String(),
  token_type: Type.Literal('Bearer'),
  expires_in: Type.Integer(),
  refresh_token: Type.String(),
  scope: Type.String(),
  bunker_url: Type.String(),
  policy: Type.Object({
    slug: Type.String(),
    display_name: Type.String(),
    description: Type.String(),
    permissions: Type.Unknown(),
  }),
  authorization_handle: Type.String(),
});

const PollQuery = Type.Object({ state: Type.String({ minLength: 1, maxLength: 1024 }) });
const PollResponse = {
  200: Type.Object({ code: Type.String() }),
  202: Type.Object({ status: Type.Literal('pending') }),
};

const RegisterBody = Type.Object({
  email: Type.String({ maxLength: 254 }),
  password: Type.String({ maxLength: 1024 }),
  /** Keycast's name for the bring-your-own-key public key. */
  pubkey: Type.String({ maxLength: 64 }),
  client_id: Str(200),
  redirect_uri: Str(),
  scope: Type.Optional(Type.String({ maxLength: 200 })),
  code_challenge: Type.Optional(Str(128)),
  code_challenge_method: Type.Optional(Str(16)),
  state: Type.Optional(Type.String({ maxLength: 1024 })),
  _csrf: Type.Optional(Type.String({ maxLength: 512 })),
});

/** A browser form post (answered with a redirect or a page) rather than a JSON call. */
function isFormPost(request: FastifyRequest): boolean {
  return (request.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded');
}

export const oauthRoutes: FastifyPluginAsyncTypebox<{ ctx: ApiContext }> = async (app, { ctx }) => {
  app.post(
    '/api/oauth/authorize',
    {
      preHandler: requireSession(ctx),
      schema: { body: AuthorizeBody },
    },
    async (request, reply) => {
      const body = request.body;
      const redirect = checkRedirectUri(body.redirect_uri).toString();
      // A browser form gets a redirect; a JSON caller gets the code in the body.
      const isForm = isFormPost(request);
      if (body.approved !== true && body.approved !== 'true') {
        const target = withParams(redirect, { error: 'access_denied', state: body.state });
        if (isForm) return reply.redirect(target, 302);
        return reply
          .status(403)
          .send({ error: 'access_denied', error_description: 'the user denied the request', redirect_uri: target });
      }
      const code = await issueCode(ctx, {
        userId: request.userId!,
        clientId: body.client_id,
        redirectUri: body.redirect_uri,
        scope: body.scope,
        codeChallenge: body.code_challenge,
        codeChallengeMethod: body.code_challenge_method,
        state: body.state,
      });
      const target = withParams(body.redirect_uri, { code, state: body.state });
      if (isForm) return reply.redirect(target, 302);
      return { code, redirect_uri: target };
    },
  );

  // Bring your own key: the register form GET /api/oauth/authorize shows for `byok_pubkey` posts here.
  app.post('/api/oauth/register', { schema: { body: RegisterBody } }, async (request, reply) => {
    const body = request.body;
    const isForm = isFormPost(request);
    const redirect = checkRedirectUri(body.redirect_uri).toString();
    let code: string;
    try {
      code = await registerByok(ctx, {
        email: body.email,
        password: body.password,
        byokPubkey: body.pubkey,
        clientId: body.client_id,
        redirectUri: body.redirect_uri,
        scope: body.scope,
        codeChallenge: body.code_challenge,
        codeChallengeMethod: body.code_challenge_method,
        state: body.state,
      });
    } catch (err) {
      if (!isForm) throw err;
      const failure = formError(err, reply);
      const { password: _password, _csrf, pubkey, ...shown } = body;
      const page = await byokRegisterPage(ctx, reply, { ...shown, byok_pubkey: pubkey, error: failure.message });
      return sendPage(reply, page, failure.statusCode);
    }
    const target = withParams(redirect, { code, state: body.state });
    if (isForm) return reply.redirect(target, 303);
    return { code, redirect_uri: target };
  });

  // For apps that poll instead of reading their callback (Keycast's answers: 200 with the code, or 202).
  app.get('/api/oauth/poll', { schema: { querystring: PollQuery, response: PollResponse } }, async (request, reply) => {
    reply.header('cache-control', 'no-store');
    const code = await pollCode(ctx, request.query.state);
    if (code === undefined) return reply.status(202).send({ status: 'pending' as const });
    return { code };
  });

  app.post(
    '/api/oauth/token',
    {
      schema: { body: TokenBody, response: { 200: TokenResponseBody, '4xx': OAuthErrorBody } },
      // RFC 6749: token errors are {error, error_description}, whatever went wrong.
      errorHandler: (err, _request, reply) => {
        if (err instanceof OAuthError)
          return reply.status(err.statusCode).send({ error: err.code, error_description: err.description });
        const status = err.validation ? 400 : (err.statusCode ?? 500);
        if (status >= 500) throw err;
        return reply.status(status).send({ error: 'invalid_request', error_description: err.message });
      },
    },
    async (request, reply) => {
      reply.header('cache-control', 'no-store');
      const body = request.body;
      if (body.grant_type === 'refresh_token') return refreshTokens(ctx, body.refresh_token);
      return exchangeCode(ctx, {
        code: body.code,
        clientId: body.client_id,
        redirectUri: body.redirect_uri,
        codeVerifier: body.code_verifier,
      });
    },
  );
};
