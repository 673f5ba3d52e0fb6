// GET /api/oauth/authorize in the browser: a bad client_id or redirect_uri is refused on the spot (never
// redirected to); other bad parameters go back to the app as an OAuth error; then login or register if there
// is no session, then the consent page. The consent form posts to POST /oauth/consent: a session that ended
// meanwhile leads to the login page and back to this consent, and the user may grant a narrower policy.
import { Type, type Static } from 'typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { type Policy, findPolicy, listPolicies } from '../../database/queries/policies.js';
import { findUserById } from '../../database/queries/users.js';
import { npubEncode } from '../../shared/nostr/keys.js';
import type { ApiContext } from '../context.js';
import { OAuthError, badRequest } from '../errors.js';
import { sessionUser } from '../plugins/session.js';
import { csrfToken, pageCsp } from '../plugins/web-security.js';
import { BYOK_PUBKEY } from '../services/byok.js';
import {
  checkRedirectUri,
  issueCode,
  policySlugOfScope,
  silentReauthorization,
  withParams,
} from '../services/oauth.js';
import { loginUrl, safeNext } from './guard.js';
import { sendPage } from './layout.js';
import { grantablePolicies, isNarrowerOrEqual } from './policy-choice.js';
import { byokRegisterPage } from './views-byok.js';
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
  // Keycast's: skip consent with the handle of a past one unless prompt=consent; register for the app's own key.
  prompt: Param(32),
  authorization_handle: Param(128),
  byok_pubkey: Param(128),
  default_register: Param(8),
});

const ConsentForm = Type.Object({
  _csrf: Type.String({ maxLength: 512 }),
  client_id: Type.String({ minLength: 1, maxLength: 200 }),
  redirect_uri: Type.String({ minLength: 1, maxLength: 2048 }),
  /** What the app asked for; `scope` is what the user grants, never wider. */
  requested_scope: Type.String({ maxLength: 200 }),
  scope: Type.String({ maxLength: 200 }),
  code_challenge: Type.String({ maxLength: 128 }),
  code_challenge_method: Type.String({ maxLength: 16 }),
  state: Param(1024),
  approved: Type.Union([Type.Literal('true'), Type.Literal('false')]),
});
type ConsentForm = Static<typeof ConsentForm>;

const oauthError = (code: string, description: string) => new OAuthError(400, code, description);
const INVALID_LINK = 'This sign-in link is not valid';

/** The authorize URL the consent form came from, to return to it after logging in again. */
function authorizePath(f: ConsentForm): string {
  const params = new URLSearchParams({
    response_type: 'code',
    client_id: f.client_id,
    redirect_uri: f.redirect_uri,
    scope: f.requested_scope,
    code_challenge: f.code_challenge,
    code_challenge_method: f.code_challenge_method,
  });
  if (f.state !== undefined) params.set('state', f.state);
  return `/api/oauth/authorize?${params.toString()}`;
}

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
      return sendPage(
        reply,
        errorPage(INVALID_LINK, `The app sent a link Keyfarm cannot use (${message}). Nothing was shared.`),
        400,
      );
    }

    let policy: Policy | undefined;
    try {
      if (q.response_type !== undefined && q.response_type !== 'code')
        throw oauthError('unsupported_response_type', 'response_type must be code');
      if (q.code_challenge_method !== 'S256' || !q.code_challenge || !/^[A-Za-z0-9_-]{43}$/.test(q.code_challenge)) {
        throw oauthError(
          'invalid_request',
          'PKCE is required: code_challenge (base64url SHA-256) with code_challenge_method=S256',
        );
      }
      const slug = policySlugOfScope(q.scope);
      // An app asks for a built-in; the user may grant one of their own policies instead (the choices).
      policy = await findPolicy(ctx.db, slug);
      if (!policy) throw oauthError('invalid_scope', `unknown policy: ${slug}`);
      if (q.byok_pubkey !== undefined && !BYOK_PUBKEY.test(q.byok_pubkey))
        throw oauthError('invalid_request', 'byok_pubkey must be 64 lowercase hex characters');
    } catch (err) {
      if (!(err instanceof OAuthError)) throw err;
      redirect.searchParams.set('error', err.code);
      redirect.searchParams.set('error_description', err.description);
      if (q.state !== undefined) redirect.searchParams.set('state', q.state);
      return reply.redirect(redirect.toString(), 302);
    }

    // Bring your own key: a new account for the app's key, whoever is signed in here (as Keycast does).
    if (q.byok_pubkey !== undefined) {
      return sendPage(
        reply,
        await byokRegisterPage(ctx, reply, {
          ...q,
          client_id: q.client_id,
          redirect_uri: q.redirect_uri!,
          byok_pubkey: q.byok_pubkey,
        }),
      );
    }

    const userId = await sessionUser(ctx, request);
    const user = userId ? await findUserById(ctx.db, userId) : undefined;
    if (!user) {
      const intro = `${q.client_id} wants to use your Nostr key. Log in, or create an account, to continue.`;
      return sendPage(reply, loginPage({ csrf: csrfToken(reply), next: safeNext(request.url), intro }));
    }

    if (q.authorization_handle !== undefined && q.prompt !== 'consent') {
      const code = await silentReauthorization(ctx, {
        userId: user.id,
        handle: q.authorization_handle,
        clientId: q.client_id,
        redirectUri: q.redirect_uri!,
        codeChallenge: q.code_challenge,
        codeChallengeMethod: 'S256',
        state: q.state,
      });
      if (code !== undefined) {
        redirect.searchParams.set('code', code);
        if (q.state !== undefined) redirect.searchParams.set('state', q.state);
        return reply.redirect(redirect.toString(), 302);
      }
    }

    reply.header('content-security-policy', pageCsp(ctx.config, [redirect.origin]));
    return sendPage(
      reply,
      consentPage(
        {
          clientId: q.client_id,
          redirectUri: q.redirect_uri!,
          redirectOrigin: redirect.origin,
          scope: `policy:${policy.slug}`,
          codeChallenge: q.code_challenge,
          codeChallengeMethod: 'S256',
          state: q.state,
          policy,
          choices: grantablePolicies(policy, await listPolicies(ctx.db, user.id)),
          email: user.email,
          npub: npubEncode(user.pubkey),
        },
        csrfToken(reply),
      ),
    );
  });

  app.post('/oauth/consent', { schema: { body: ConsentForm } }, async (request, reply) => {
    const form = request.body;
    let redirect: URL;
    try {
      redirect = checkRedirectUri(form.redirect_uri);
    } catch {
      return sendPage(
        reply,
        errorPage(INVALID_LINK, 'The app sent a link Keyfarm cannot use. Nothing was shared.'),
        400,
      );
    }
    // Denying needs no session: nothing is shared.
    if (form.approved !== 'true')
      return reply.redirect(withParams(redirect, { error: 'access_denied', state: form.state }), 303);

    const userId = await sessionUser(ctx, request);
    if (!userId) return reply.redirect(loginUrl(authorizePath(form)), 303);

    const requested = await findPolicy(ctx.db, policySlugOfScope(form.requested_scope), userId);
    const chosen = await findPolicy(ctx.db, policySlugOfScope(form.scope), userId);
    if (!requested || !chosen) throw badRequest('That permission does not exist. Go back to the app and start again.');
    if (!isNarrowerOrEqual(chosen.permissions, requested.permissions)) {
      throw badRequest(`You can give the app only what it asked for (${requested.display_name}) or less.`);
    }
    const code = await issueCode(ctx, {
      userId,
      clientId: form.client_id,
      redirectUri: form.redirect_uri,
      scope: `policy:${chosen.slug}`,
      codeChallenge: form.code_challenge,
      codeChallengeMethod: form.code_challenge_method,
    });
    return reply.redirect(withParams(redirect, { code, state: form.state }), 303);
  });
};
