// GET /api/oauth/authorize in the browser: a bad client_id or redirect_uri is refused on the spot (never
// redirected to); other bad parameters go back to the app as an OAuth error; then login or register if there
// is no session, then the consent page. The consent form posts to POST /api/oauth/authorize (api/routes/oauth.ts).
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { findPolicy } from '../../database/queries/policies.js';
import { findUserById } from '../../database/queries/users.js';
import { npubEncode } from '../../shared/nostr/keys.js';
import type { ApiContext } from '../context.js';
import { OAuthError } from '../errors.js';
import { sessionUser } from '../plugins/session.js';
import { csrfToken, pageCsp } from '../plugins/web-security.js';
import { checkRedirectUri, policySlugOfScope } from '../services/oauth.js';
import { safeNext } from './guard.js';
import { sendPage } from './layout.js';
import { consentPage, errorPage, loginPage } from './views-auth.js';

const Param = (max: number) => Type.Optional(Type.String({ maxLength: max }));
const AuthorizeQuery = Type.Object({
  response_type: Param(32),
  client_id: Param(200),
  redirect_uri: Param(2048),
  scope: Param(200),
  code_challenge: Param(128),
  code_challenge_method: Param(16),
  state: Param(1024),
});

const oauthError = (code: string, description: string) => new OAuthError(400, code, description);

export const consentPages: FastifyPluginAsyncTypebox<{ ctx: ApiContext }> = async (app, { ctx }) => {
  app.get('/api/oauth/authorize', { schema: { querystring: AuthorizeQuery } }, async (request, reply) => {
    const q = request.query;
    // An app may open this page in a popup and wait for its callback there: keep the opener.
    reply.header('cross-origin-opener-policy', 'unsafe-none');

    let redirect: URL;
    try {
      if (!q.client_id) throw oauthError('invalid_request', 'client_id is missing');
      redirect = checkRedirectUri(q.redirect_uri ?? '');
    } catch (err) {
      const message = err instanceof OAuthError ? err.description : 'the request is not valid';
      return sendPage(reply, errorPage('This sign-in link is not valid', `The app sent a link Keyfarm cannot use (${message}). Nothing was shared.`), 400);
    }

    let policy;
    try {
      if (q.response_type !== undefined && q.response_type !== 'code') throw oauthError('unsupported_response_type', 'response_type must be code');
      if (q.code_challenge_method !== 'S256' || !q.code_challenge || !/^[A-Za-z0-9_-]{43}$/.test(q.code_challenge)) {
        throw oauthError('invalid_request', 'PKCE is required: code_challenge (base64url SHA-256) with code_challenge_method=S256');
      }
      const slug = policySlugOfScope(q.scope);
      policy = await findPolicy(ctx.db, slug);
      if (!policy) throw oauthError('invalid_scope', `unknown policy: ${slug}`);
    } catch (err) {
      if (!(err instanceof OAuthError)) throw err;
      redirect.searchParams.set('error', err.code);
      redirect.searchParams.set('error_description', err.description);
      if (q.state !== undefined) redirect.searchParams.set('state', q.state);
      return reply.redirect(redirect.toString(), 302);
    }

    const userId = await sessionUser(ctx, request);
    const user = userId ? await findUserById(ctx.db, userId) : undefined;
    if (!user) {
      const intro = `${q.client_id} wants to use your Nostr key. Log in, or create an account, to continue.`;
      return sendPage(reply, loginPage({ csrf: csrfToken(reply), next: safeNext(request.url), intro }));
    }

    reply.header('content-security-policy', pageCsp(ctx.config, [redirect.origin]));
    return sendPage(reply, consentPage({
      clientId: q.client_id,
      redirectUri: q.redirect_uri!,
      redirectOrigin: redirect.origin,
      scope: `policy:${policy.slug}`,
      codeChallenge: q.code_challenge,
      codeChallengeMethod: 'S256',
      state: q.state,
      policy,
      npub: npubEncode(user.pubkey),
    }, { email: user.email, csrf: csrfToken(reply) }));
  });
};
