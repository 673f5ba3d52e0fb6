import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { ApiContext } from '../context.js';
import { OAuthError } from '../errors.js';
import { requireSession } from '../plugins/session.js';
import { checkRedirectUri, exchangeCode, issueCode, refreshTokens } from '../services/oauth.js';

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
    grant_type: Type.Literal('authorization_code'),
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
});

function withParams(uri: string, params: Record<string, string | undefined>): string {
  const url = new URL(uri);
  for (const [k, v] of Object.entries(params)) if (v !== undefined) url.searchParams.set(k, v);
  return url.toString();
}

export const oauthRoutes: FastifyPluginAsyncTypebox<{ ctx: ApiContext }> = async (app, { ctx }) => {
  app.post('/api/oauth/authorize', {
    preHandler: requireSession(ctx),
    schema: { body: AuthorizeBody },
  }, async (request, reply) => {
    const body = request.body;
    const redirect = checkRedirectUri(body.redirect_uri).toString();
    // A browser form gets a redirect; a JSON caller gets the code in the body.
    const isForm = (request.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded');
    if (body.approved !== true && body.approved !== 'true') {
      const target = withParams(redirect, { error: 'access_denied', state: body.state });
      if (isForm) return reply.redirect(target, 302);
      return reply.status(403).send({ error: 'access_denied', error_description: 'the user denied the request', redirect_uri: target });
    }
    const code = await issueCode(ctx, {
      userId: request.userId!,
      clientId: body.client_id,
      redirectUri: body.redirect_uri,
      scope: body.scope,
      codeChallenge: body.code_challenge,
      codeChallengeMethod: body.code_challenge_method,
    });
    const target = withParams(body.redirect_uri, { code, state: body.state });
    if (isForm) return reply.redirect(target, 302);
    return { code, redirect_uri: target };
  });

  app.post('/api/oauth/token', {
    schema: { body: TokenBody, response: { 200: TokenResponseBody, '4xx': OAuthErrorBody } },
    // RFC 6749: token errors are {error, error_description}, whatever went wrong.
    errorHandler: (err, _request, reply) => {
      if (err instanceof OAuthError) return reply.status(err.statusCode).send({ error: err.code, error_description: err.description });
      const status = err.validation ? 400 : (err.statusCode ?? 500);
      if (status >= 500) throw err;
      return reply.status(status).send({ error: 'invalid_request', error_description: err.message });
    },
  }, async (request, reply) => {
    reply.header('cache-control', 'no-store');
    const body = request.body;
    if (body.grant_type === 'refresh_token') return refreshTokens(ctx, body.refresh_token);
    return exchangeCode(ctx, {
      code: body.code,
      clientId: body.client_id,
      redirectUri: body.redirect_uri,
      codeVerifier: body.code_verifier,
    });
  });
};
