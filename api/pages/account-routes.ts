// The signed-in user's pages. Every form posts back with its CSRF token and answers with a page or a redirect.
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import QRCode from 'qrcode';
import { recentUserActivity } from '../../database/queries/activity.js';
import { listUserAuthorizations } from '../../database/queries/authorizations.js';
import { listPolicies } from '../../database/queries/policies.js';
import { npubEncode } from '../../shared/nostr/keys.js';
import type { ApiContext } from '../context.js';
import { badRequest } from '../errors.js';
import { connectNostrConnectUri } from '../routes/nip46.js';
import { Uuid } from '../schemas.js';
import { createAuthorization, revoke } from '../services/authorizations.js';
import { MIN_PASSPHRASE_LENGTH, exportUserKey } from '../services/key-export.js';
import { changePassword } from '../services/password-change.js';
import { formError } from './forms.js';
import { requirePageUser, signedIn } from './guard.js';
import { sendPage } from './layout.js';
import {
  accountPage, activityPage, appsPage, bunkerCreatedPage, bunkerFormPage, exportFormPage, exportResultPage, nostrConnectPage, passwordPage,
} from './views-account.js';

const Csrf = Type.String({ maxLength: 512 });
const PolicySlug = Type.String({ minLength: 1, maxLength: 64 });
const Secret = Type.String({ maxLength: 1024 });
const MAX_RELAYS = 20;
const RELAY = /^wss?:\/\/[^\s/?#]+\S*$/;

/** One relay a line; empty means the service's relays. */
export function parseRelayLines(text: string): string[] {
  const relays = [...new Set(text.split(/\s+/).map((r) => r.trim()).filter(Boolean))];
  if (relays.length > MAX_RELAYS) throw badRequest(`at most ${MAX_RELAYS} relays`);
  const bad = relays.find((r) => !RELAY.test(r) || r.length > 512);
  if (bad !== undefined) throw badRequest(`not a ws:// or wss:// relay address: ${bad.slice(0, 80)}`);
  return relays;
}

export const accountPages: FastifyPluginAsyncTypebox<{ ctx: ApiContext }> = async (app, { ctx }) => {
  app.addHook('preHandler', requirePageUser(ctx));

  app.get('/account', async (request, reply) => {
    const user = request.user!;
    return sendPage(reply, accountPage(signedIn(request, reply), { pubkey: user.pubkey, npub: npubEncode(user.pubkey), created: user.createdAt }));
  });

  app.get('/account/apps', { schema: { querystring: Type.Object({ notice: Type.Optional(Type.String({ maxLength: 32 })) }) } }, async (request, reply) => {
    const [apps, policies] = await Promise.all([listUserAuthorizations(ctx.db, request.user!.id), listPolicies(ctx.db)]);
    const notice = request.query.notice === 'revoked' ? 'The app is revoked: it can no longer sign for you.' : undefined;
    return sendPage(reply, appsPage(signedIn(request, reply), apps, new Map(policies.map((p) => [p.slug, p])), notice));
  });

  app.post('/account/apps/revoke', { schema: { body: Type.Object({ authorization_id: Uuid, _csrf: Csrf }) } }, async (request, reply) => {
    await revoke(ctx, request.user!.id, { id: request.body.authorization_id });
    return reply.redirect('/account/apps?notice=revoked', 303);
  });

  app.get('/account/bunker', async (request, reply) => {
    return sendPage(reply, bunkerFormPage(signedIn(request, reply), await listPolicies(ctx.db), ctx.config.BUNKER_RELAYS));
  });

  app.post('/account/bunker', {
    schema: { body: Type.Object({ app_name: Type.String({ maxLength: 200 }), policy_slug: PolicySlug, relays: Type.Optional(Type.String({ maxLength: 12_000 })), _csrf: Csrf }) },
  }, async (request, reply) => {
    const body = request.body;
    try {
      const appName = body.app_name.trim();
      if (!appName) throw badRequest('give the app a name');
      const created = await createAuthorization(ctx, {
        userId: request.user!.id,
        applicationName: appName,
        policySlug: body.policy_slug,
        relays: parseRelayLines(body.relays ?? ''),
      });
      const qr = await QRCode.toString(created.bunkerUrl, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
      return sendPage(reply, bunkerCreatedPage(signedIn(request, reply), appName, created.bunkerUrl, qr));
    } catch (err) {
      const failure = formError(err, reply);
      const page = bunkerFormPage(signedIn(request, reply), await listPolicies(ctx.db), ctx.config.BUNKER_RELAYS, failure.message);
      return sendPage(reply, page, failure.statusCode);
    }
  });

  app.get('/account/nostrconnect', async (request, reply) => {
    return sendPage(reply, nostrConnectPage(signedIn(request, reply), await listPolicies(ctx.db)));
  });

  app.post('/account/nostrconnect', {
    schema: { body: Type.Object({ uri: Type.String({ maxLength: 4096 }), app_name: Type.Optional(Type.String({ maxLength: 200 })), policy_slug: PolicySlug, _csrf: Csrf }) },
  }, async (request, reply) => {
    const body = request.body;
    const policies = await listPolicies(ctx.db);
    try {
      const appName = body.app_name?.trim() || undefined;
      await connectNostrConnectUri(ctx, request.user!.id, { uri: body.uri, policySlug: body.policy_slug, appName });
      return sendPage(reply, nostrConnectPage(signedIn(request, reply), policies, { connected: appName ?? 'The app' }));
    } catch (err) {
      const failure = formError(err, reply);
      return sendPage(reply, nostrConnectPage(signedIn(request, reply), policies, { error: failure.message }), failure.statusCode);
    }
  });

  app.get('/account/activity', async (request, reply) => {
    return sendPage(reply, activityPage(signedIn(request, reply), await recentUserActivity(ctx.db, request.user!.id, 50)));
  });

  app.get('/account/export', async (request, reply) => sendPage(reply, exportFormPage(signedIn(request, reply), MIN_PASSPHRASE_LENGTH)));

  app.post('/account/export', { schema: { body: Type.Object({ password: Secret, passphrase: Secret, _csrf: Csrf }) } }, async (request, reply) => {
    try {
      const keys = await exportUserKey(ctx, { userId: request.user!.id, password: request.body.password, passphrase: request.body.passphrase, ip: request.ip });
      return sendPage(reply, exportResultPage(signedIn(request, reply), keys));
    } catch (err) {
      const failure = formError(err, reply);
      const message = failure.statusCode === 401 ? 'That is not your password.' : failure.message;
      return sendPage(reply, exportFormPage(signedIn(request, reply), MIN_PASSPHRASE_LENGTH, message), failure.statusCode);
    }
  });

  app.get('/account/password', async (request, reply) => sendPage(reply, passwordPage(signedIn(request, reply))));

  app.post('/account/password', {
    schema: { body: Type.Object({ current_password: Secret, new_password: Secret, confirm_password: Secret, _csrf: Csrf }) },
  }, async (request, reply) => {
    const body = request.body;
    try {
      if (body.new_password !== body.confirm_password) throw badRequest('the two new passwords differ');
      await changePassword(ctx, {
        user: request.user!,
        currentPassword: body.current_password,
        newPassword: body.new_password,
        keepSession: request.sessionToken!,
        ip: request.ip,
      });
      return sendPage(reply, passwordPage(signedIn(request, reply), { changed: true }));
    } catch (err) {
      const failure = formError(err, reply);
      const message = failure.statusCode === 401 ? 'The current password is wrong.' : failure.message;
      return sendPage(reply, passwordPage(signedIn(request, reply), { error: message }), failure.statusCode);
    }
  });
};
