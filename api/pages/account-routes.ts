// The signed-in user's pages. Every form posts back with its CSRF token and answers with a page or a redirect;
// a mistake shows beside its field with what the user typed (never a password or key).
import { setTimeout as sleep } from 'node:timers/promises';
import { Type } from 'typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Value } from 'typebox/value';
import { recentUserActivity } from '../../database/queries/activity.js';
import { listPendingApprovals } from '../../database/queries/approvals.js';
import { countLiveAuthorizations, listUserAuthorizations } from '../../database/queries/authorizations.js';
import { listPolicies } from '../../database/queries/policies.js';
import { readConnectResult } from '../../shared/nip46/connect-result.js';
import { npubEncode } from '../../shared/nostr/keys.js';
import type { ApiContext } from '../context.js';
import { type HttpError, forbidden, notFound } from '../errors.js';
import {
  type NostrConnectUri,
  NostrConnectUriError,
  connectNostrConnectUri,
  parseNostrConnectUri,
} from '../routes/nip46.js';
import { PolicySlug, Uuid } from '../schemas.js';
import { createAuthorization, revoke } from '../services/authorizations.js';
import { EMAIL_NOT_VERIFIED, MIN_PASSPHRASE_LENGTH, exportUserKey } from '../services/key-export.js';
import { changeEmail, resendVerificationForUser } from '../services/email-verification.js';
import { changePassword } from '../services/password-change.js';
import { Email } from '../schemas.js';
import { BunkerFormFields, readBunkerForm, sendCreatedBunker } from './bunker-form.js';
import { putFlash } from './flash.js';
import { FieldError, failedForm, formError } from './forms.js';
import { requirePageUser, signedIn } from './guard.js';
import { sendPage } from './layout.js';
import {
  accountPage,
  activityPage,
  appsPage,
  bunkerFormPage,
  exportFormPage,
  exportResultPage,
  nostrConnectPage,
  nostrConnectPreviewPage,
  nostrConnectResultPage,
  passwordPage,
  type DeliveryState,
} from './views-account.js';
import { pendingApprovalsSection } from './views-approvals.js';
import { changeEmailPage, verifyBanner } from './views-email.js';

const Csrf = Type.String({ maxLength: 512 });
const Secret = Type.String({ maxLength: 1024 });
/** How long the result page waits for relay-ingest's word before showing "sending" and refreshing. */
const DELIVERY_WAIT_MS = 3_000;
/** After this, no word from relay-ingest means it will not come. */
const DELIVERY_GIVE_UP_MS = 30_000;

/** Puts a refusal about relays or the policy on its field; other refusals (limits) stay on the whole form. */
function authorizationMistake(err: HttpError): HttpError {
  if (err instanceof FieldError) return err;
  switch (err.reason) {
    case 'unknown_policy':
      return new FieldError('policy_slug', 'Choose one of the permissions in the list.');
    case 'no_relay':
      return new FieldError('relays', err.message);
    case 'bad_relay':
      return new FieldError('relays', `That relay cannot be used: ${err.message}.`);
    default:
      return err;
  }
}

const nostrConnectMistake = (err: HttpError): HttpError =>
  err instanceof NostrConnectUriError
    ? new FieldError('uri', `That link cannot be used: ${err.detail}.`)
    : authorizationMistake(err);

const APPS_NOTICES = new Map([
  ['revoked', 'The app is revoked: it can no longer sign for you.'],
  ['policy-changed', 'The permission is changed: the app is under it from its next request.'],
]);

const ACCOUNT_NOTICES = new Map([
  ['email-changed', 'Your email address is changed. Confirm it with the link we mailed to it.'],
]);

export const accountPages: FastifyPluginAsyncTypebox<{ ctx: ApiContext }> = async (app, { ctx }) => {
  app.addHook('preHandler', requirePageUser(ctx));

  app.get(
    '/account',
    { schema: { querystring: Type.Object({ notice: Type.Optional(Type.String({ maxLength: 32 })) }) } },
    async (request, reply) => {
      const user = request.user!;
      const [appCount, pending] = await Promise.all([
        countLiveAuthorizations(ctx.db, user.id),
        listPendingApprovals(ctx.db, user.id),
      ]);
      const me = signedIn(request, reply);
      const notice = ACCOUNT_NOTICES.get(request.query.notice ?? '');
      const banner = user.emailVerifiedAt
        ? undefined
        : verifyBanner(me, ctx.mailer.outbox, request.query.notice === 'verification-sent');
      const emailVerified = user.emailVerifiedAt !== null;
      return sendPage(
        reply,
        accountPage(me, {
          pubkey: user.pubkey,
          npub: npubEncode(user.pubkey),
          created: user.createdAt,
          appCount,
          emailVerified,
          banner,
          notice,
          pending: pendingApprovalsSection(pending),
        }),
      );
    },
  );

  app.post('/account/verify-email', { schema: { body: Type.Object({ _csrf: Csrf }) } }, async (request, reply) => {
    await resendVerificationForUser(ctx, request.user!.id);
    return reply.redirect('/account?notice=verification-sent', 303);
  });

  app.get('/account/email', async (request, reply) => sendPage(reply, changeEmailPage(signedIn(request, reply))));

  app.post(
    '/account/email',
    { schema: { body: Type.Object({ email: Type.String({ maxLength: 254 }), password: Secret, _csrf: Csrf }) } },
    async (request, reply) => {
      const email = request.body.email.trim();
      try {
        if (!Value.Check(Email, email)) throw new FieldError('email', 'Enter an email address, like name@example.com.');
        await changeEmail(ctx, {
          user: request.user!,
          password: request.body.password,
          newEmail: email,
          ip: request.ip,
        });
        return reply.redirect('/account?notice=email-changed', 303);
      } catch (err) {
        let failure = formError(err, reply);
        if (failure.statusCode === 401) failure = new FieldError('password', 'That is not your password.', 401);
        else if (failure.reason === 'email_taken')
          failure = new FieldError('email', 'Another account has this address.', 409);
        else if (failure.reason === 'same_email') failure = new FieldError('email', 'That is already your address.');
        return sendPage(
          reply,
          changeEmailPage(signedIn(request, reply), failedForm(failure, { email })),
          failure.statusCode,
        );
      }
    },
  );

  app.get(
    '/account/apps',
    { schema: { querystring: Type.Object({ notice: Type.Optional(Type.String({ maxLength: 32 })) }) } },
    async (request, reply) => {
      const [apps, policies] = await Promise.all([
        listUserAuthorizations(ctx.db, request.user!.id),
        listPolicies(ctx.db, request.user!.id),
      ]);
      const notice = APPS_NOTICES.get(request.query.notice ?? '');
      return sendPage(
        reply,
        appsPage(signedIn(request, reply), apps, new Map(policies.map((p) => [p.slug, p])), notice),
      );
    },
  );

  app.post(
    '/account/apps/revoke',
    { schema: { body: Type.Object({ authorization_id: Uuid, _csrf: Csrf }) } },
    async (request, reply) => {
      await revoke(ctx, request.user!.id, { id: request.body.authorization_id });
      return reply.redirect('/account/apps?notice=revoked', 303);
    },
  );

  app.get('/account/bunker', async (request, reply) => {
    return sendPage(
      reply,
      bunkerFormPage(signedIn(request, reply), await listPolicies(ctx.db, request.user!.id), ctx.config.BUNKER_RELAYS),
    );
  });

  // POST-redirect-GET: a reload of the result cannot create a second bunker. The link, with its secret, goes
  // to the result page through a sealed one-time flash, never through the URL.
  app.post(
    '/account/bunker',
    {
      schema: {
        body: Type.Object(BunkerFormFields),
      },
    },
    async (request, reply) => {
      const body = request.body;
      try {
        const { appName, relays } = readBunkerForm(ctx.config, body);
        const created = await createAuthorization(ctx, {
          userId: request.user!.id,
          applicationName: appName,
          policySlug: body.policy_slug,
          relays,
        });
        const flash = await putFlash(ctx, request.sessionToken!, { appName, bunkerUrl: created.bunkerUrl });
        return reply.redirect(`/account/bunker/created?flash=${flash}`, 303);
      } catch (err) {
        const failure = authorizationMistake(formError(err, reply));
        const form = failedForm(failure, {
          app_name: body.app_name,
          policy_slug: body.policy_slug,
          relays: body.relays,
        });
        return sendPage(
          reply,
          bunkerFormPage(
            signedIn(request, reply),
            await listPolicies(ctx.db, request.user!.id),
            ctx.config.BUNKER_RELAYS,
            form,
          ),
          failure.statusCode,
        );
      }
    },
  );

  app.get(
    '/account/bunker/created',
    { schema: { querystring: Type.Object({ flash: Type.Optional(Type.String({ maxLength: 64 })) }) } },
    async (request, reply) => {
      return sendCreatedBunker(ctx, request, reply, request.query.flash);
    },
  );

  app.get('/account/nostrconnect', async (request, reply) =>
    sendPage(reply, nostrConnectPage(signedIn(request, reply))),
  );

  // A pasted link is shown before anything is created: who asks, for what, on which relays.
  app.post(
    '/account/nostrconnect/preview',
    { schema: { body: Type.Object({ uri: Type.String({ maxLength: 4096 }), _csrf: Csrf }) } },
    async (request, reply) => {
      const uri = request.body.uri.trim();
      try {
        const parsed = parseNostrConnectUri(uri);
        const preview = { uri, name: parsed.name, perms: parsed.perms, relays: parsed.relays };
        return sendPage(
          reply,
          nostrConnectPreviewPage(signedIn(request, reply), preview, await listPolicies(ctx.db, request.user!.id)),
        );
      } catch (err) {
        const failure = nostrConnectMistake(formError(err, reply));
        return sendPage(
          reply,
          nostrConnectPage(signedIn(request, reply), failedForm(failure, { uri })),
          failure.statusCode,
        );
      }
    },
  );

  app.post(
    '/account/nostrconnect',
    {
      schema: {
        body: Type.Object({
          uri: Type.String({ maxLength: 4096 }),
          app_name: Type.Optional(Type.String({ maxLength: 200 })),
          policy_slug: PolicySlug,
          _csrf: Csrf,
        }),
      },
    },
    async (request, reply) => {
      const body = request.body;
      try {
        const appName = body.app_name?.trim() || undefined;
        const created = await connectNostrConnectUri(ctx, request.user!.id, {
          uri: body.uri,
          policySlug: body.policy_slug,
          appName,
        });
        return reply.redirect(`/account/nostrconnect/result?authorization=${created.authorizationId}`, 303);
      } catch (err) {
        const failure = nostrConnectMistake(formError(err, reply));
        const values = { uri: body.uri, app_name: body.app_name, policy_slug: body.policy_slug };
        let parsed: NostrConnectUri;
        try {
          parsed = parseNostrConnectUri(body.uri);
        } catch {
          return sendPage(
            reply,
            nostrConnectPage(signedIn(request, reply), failedForm(failure, values)),
            failure.statusCode,
          );
        }
        const preview = { uri: body.uri, name: parsed.name, perms: parsed.perms, relays: parsed.relays };
        const page = nostrConnectPreviewPage(
          signedIn(request, reply),
          preview,
          await listPolicies(ctx.db, request.user!.id),
          failedForm(failure, values),
        );
        return sendPage(reply, page, failure.statusCode);
      }
    },
  );

  // Whether the `connect` answer reached the app's relays, as relay-ingest recorded it.
  app.get(
    '/account/nostrconnect/result',
    { schema: { querystring: Type.Object({ authorization: Uuid }) } },
    async (request, reply) => {
      const authorization = (await listUserAuthorizations(ctx.db, request.user!.id)).find(
        (a) => a.id === request.query.authorization && a.clientPubkey,
      );
      if (!authorization) throw notFound('No such connection.');
      const deadline = Date.now() + DELIVERY_WAIT_MS;
      let result = await readConnectResult(ctx.redis, ctx.config.KEY_PREFIX, authorization.bunkerPubkey);
      while (!result && Date.now() < deadline) {
        await sleep(200);
        result = await readConnectResult(ctx.redis, ctx.config.KEY_PREFIX, authorization.bunkerPubkey);
      }
      let delivery: DeliveryState;
      if (result)
        delivery =
          result.accepted > 0
            ? { state: 'delivered', accepted: result.accepted, relays: result.relays }
            : { state: 'failed', relays: result.relays };
      else
        delivery =
          Date.now() - authorization.createdAt.getTime() < DELIVERY_GIVE_UP_MS
            ? { state: 'pending' }
            : { state: 'unknown' };
      return sendPage(reply, nostrConnectResultPage(signedIn(request, reply), authorization.applicationName, delivery));
    },
  );

  app.get('/account/activity', async (request, reply) => {
    return sendPage(
      reply,
      activityPage(signedIn(request, reply), await recentUserActivity(ctx.db, request.user!.id, 50)),
    );
  });

  app.get('/account/export', async (request, reply) => {
    // Said before the password is typed: the export needs a confirmed address.
    const form = request.user!.emailVerifiedAt ? undefined : failedForm(forbidden(EMAIL_NOT_VERIFIED), {});
    return sendPage(reply, exportFormPage(signedIn(request, reply), MIN_PASSPHRASE_LENGTH, form));
  });

  app.post(
    '/account/export',
    {
      schema: {
        body: Type.Object({
          password: Secret,
          passphrase: Type.Optional(Secret),
          confirm_passphrase: Type.Optional(Secret),
          _csrf: Csrf,
        }),
      },
    },
    async (request, reply) => {
      const body = request.body;
      try {
        const passphrase = body.passphrase || undefined;
        if (passphrase !== undefined && passphrase.length < MIN_PASSPHRASE_LENGTH) {
          throw new FieldError(
            'passphrase',
            `Use at least ${MIN_PASSPHRASE_LENGTH} characters for the passphrase, or leave it empty.`,
          );
        }
        if ((passphrase ?? '') !== (body.confirm_passphrase ?? ''))
          throw new FieldError('confirm_passphrase', "The two passphrases don't match.");
        const keys = await exportUserKey(ctx, {
          userId: request.user!.id,
          password: body.password,
          passphrase,
          ip: request.ip,
        });
        return sendPage(reply, exportResultPage(signedIn(request, reply), keys));
      } catch (err) {
        let failure = formError(err, reply);
        if (failure.statusCode === 401) failure = new FieldError('password', 'That is not your password.', 401);
        return sendPage(
          reply,
          exportFormPage(signedIn(request, reply), MIN_PASSPHRASE_LENGTH, failedForm(failure, {})),
          failure.statusCode,
        );
      }
    },
  );

  app.get('/account/password', async (request, reply) => sendPage(reply, passwordPage(signedIn(request, reply))));

  app.post(
    '/account/password',
    {
      schema: {
        body: Type.Object({ current_password: Secret, new_password: Secret, confirm_password: Secret, _csrf: Csrf }),
      },
    },
    async (request, reply) => {
      const body = request.body;
      try {
        if (body.new_password.length < 8)
          throw new FieldError('new_password', 'Use at least 8 characters for the new password.');
        if (body.new_password !== body.confirm_password)
          throw new FieldError('confirm_password', "The two passwords don't match.");
        await changePassword(ctx, {
          user: request.user!,
          currentPassword: body.current_password,
          newPassword: body.new_password,
          keepSession: request.sessionToken!,
          ip: request.ip,
        });
        return sendPage(reply, passwordPage(signedIn(request, reply), { changed: true }));
      } catch (err) {
        let failure = formError(err, reply);
        if (failure.statusCode === 401)
          failure = new FieldError('current_password', 'The current password is wrong.', 401);
        else if (failure.reason === 'same_password')
          failure = new FieldError('new_password', 'The new password is the same as the current one: choose another.');
        else if (failure.reason === 'weak_password')
          failure = new FieldError('new_password', 'Use at least 8 characters for the new password.');
        return sendPage(
          reply,
          passwordPage(signedIn(request, reply), { form: failedForm(failure, {}) }),
          failure.statusCode,
        );
      }
    },
  );
};
