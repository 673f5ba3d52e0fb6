// The team pages: forms over the same services as /api/teams…, each posting back with its CSRF token and
// answering with a redirect or the page with the mistake beside its field (never an imported key).
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Value } from 'typebox/value';
import {
  listInvites,
  listMembers,
  listTeamAuthorizations,
  listTeamKeys,
  listTeamPolicies,
  listUserTeams,
  findTeam,
} from '../../database/queries/teams.js';
import { listOwnedPolicies } from '../../database/queries/policies.js';
import type { ApiContext } from '../context.js';
import { type HttpError, notFound } from '../errors.js';
import { MailedToken } from '../routes/email.js';
import { TeamName } from '../routes/teams.js';
import { Email, Hex64, PolicySlug, Uuid } from '../schemas.js';
import {
  acceptInvite,
  addTeamKey,
  cancelInvite,
  changeRole,
  createTeam,
  changeTeamAuthorizationPolicy,
  createTeamAuthorization,
  createTeamPolicy,
  deleteTeam,
  inviteMember,
  NO_SUCH_TEAM,
  removeMember,
  removeTeamKey,
  removeTeamPolicy,
  requireRole,
  revokeTeamAuthorizationAsAdmin,
} from '../services/teams.js';
import { BunkerFormFields, readBunkerForm, sendCreatedBunker } from './bunker-form.js';
import { putFlash } from './flash.js';
import { PolicyForm, policyInputOfForm } from './policy-routes.js';
import { FieldError, failedForm, formError, sentence } from './forms.js';
import { requirePageUser, signedIn } from './guard.js';
import { sendPage } from './layout.js';
import { acceptInvitePage, teamPage, teamsPage, type TeamForms, type TeamView } from './views-teams.js';

const Csrf = Type.String({ maxLength: 512 });
const Params = Type.Object({ id: Uuid });
const RoleField = Type.Union([Type.Literal('admin'), Type.Literal('member')]);

const NOTICES = new Map([
  ['created', 'The team is created. Add a key, then invite the people who share it.'],
  ['joined', 'You joined the team.'],
  ['invited', 'The invite is on its way.'],
  ['key-added', 'The key is added.'],
  ['revoked', 'The app is revoked: it can no longer sign with the team’s key.'],
  ['updated', 'Saved.'],
  ['key-deleted', 'The key is deleted, with every app that signed with it.'],
  ['policy-created', 'The team policy is created: give it to an app of the team below its name.'],
  ['policy-deleted', 'The team policy is deleted.'],
  ['policy-changed', 'The app’s permission is changed, in force at once.'],
]);

export const teamPages: FastifyPluginAsyncTypebox<{ ctx: ApiContext }> = async (app, { ctx }) => {
  app.addHook('preHandler', requirePageUser(ctx));

  async function view(userId: string, myPubkey: string, teamId: string): Promise<TeamView> {
    const role = await requireRole(ctx.db, teamId, userId, 'member');
    const team = await findTeam(ctx.db, teamId);
    if (!team) throw notFound(NO_SUCH_TEAM);
    // One after another: a request holds one pool connection at a time.
    const members = await listMembers(ctx.db, teamId);
    const invites = role === 'admin' ? await listInvites(ctx.db, teamId) : [];
    const keys = await listTeamKeys(ctx.db, teamId);
    const authorizations = await listTeamAuthorizations(ctx.db, teamId);
    const policies = await listTeamPolicies(ctx.db, teamId);
    const ownPolicies = await listOwnedPolicies(ctx.db, { teamId });
    return {
      id: team.id,
      name: team.name,
      role,
      myPubkey,
      members,
      invites,
      keys,
      authorizations,
      policies,
      ownPolicies,
      serviceRelays: ctx.config.BUNKER_RELAYS,
    };
  }

  app.get('/teams', async (request, reply) =>
    sendPage(reply, teamsPage(signedIn(request, reply), await listUserTeams(ctx.db, request.user!.id))),
  );

  app.post(
    '/teams',
    { schema: { body: Type.Object({ name: Type.String({ maxLength: 1000 }), _csrf: Csrf }) } },
    async (request, reply) => {
      const name = request.body.name.trim();
      try {
        if (!Value.Check(TeamName, name))
          throw new FieldError('name', 'Give the team a name of at most 100 characters.');
        const teamId = await createTeam(ctx, request.user!.id, name);
        return reply.redirect(`/teams/${teamId}?notice=created`, 303);
      } catch (err) {
        const failure = formError(err, reply);
        const teams = await listUserTeams(ctx.db, request.user!.id);
        return sendPage(
          reply,
          teamsPage(signedIn(request, reply), teams, failedForm(failure, { name })),
          failure.statusCode,
        );
      }
    },
  );

  // A mailed invite opens here (after logging in, if need be); joining takes a click, so a link opened by a
  // mail scanner joins nothing.
  app.get(
    '/teams/accept',
    { schema: { querystring: Type.Object({ token: Type.Optional(Type.String({ maxLength: 1024 })) }) } },
    async (request, reply) => {
      const token = request.query.token;
      const me = signedIn(request, reply);
      if (token === undefined || !Value.Check(MailedToken, token))
        return sendPage(
          reply,
          acceptInvitePage(me, '', 'This invite link is incomplete: open it again from the mail.'),
          400,
        );
      return sendPage(reply, acceptInvitePage(me, token));
    },
  );

  app.post(
    '/teams/accept',
    { schema: { body: Type.Object({ token: Type.String({ maxLength: 1024 }), _csrf: Csrf }) } },
    async (request, reply) => {
      try {
        if (!Value.Check(MailedToken, request.body.token))
          throw new FieldError('token', 'This invite link is incomplete.');
        const joined = await acceptInvite(ctx, request.user!.id, request.body.token);
        return reply.redirect(`/teams/${joined.teamId}?notice=joined`, 303);
      } catch (err) {
        const failure = formError(err, reply);
        return sendPage(
          reply,
          acceptInvitePage(signedIn(request, reply), '', sentence(failure.message)),
          failure.statusCode,
        );
      }
    },
  );

  app.get(
    '/teams/:id',
    {
      schema: {
        params: Params,
        querystring: Type.Object({ notice: Type.Optional(Type.String({ maxLength: 32 })) }),
      },
    },
    async (request, reply) => {
      const user = request.user!;
      const t = await view(user.id, user.pubkey, request.params.id);
      return sendPage(reply, teamPage(signedIn(request, reply), t, {}, NOTICES.get(request.query.notice ?? '')));
    },
  );

  /** Runs a form's action; on a mistake, the team page again with it on `form`. */
  async function act(
    request: FastifyRequest,
    reply: FastifyReply,
    form: keyof TeamForms,
    values: Record<string, string | undefined>,
    action: () => Promise<string>,
    mistake: (err: HttpError) => HttpError = (e) => e,
  ) {
    try {
      return reply.redirect(await action(), 303);
    } catch (err) {
      const failure = mistake(formError(err, reply));
      // A refusal that is not about this team's forms (not a member, no such team) is the error page.
      if (failure.statusCode === 404 && failure.message === NO_SUCH_TEAM) throw failure;
      const user = request.user!;
      const t = await view(user.id, user.pubkey, (request.params as { id: string }).id);
      const me = signedIn(request, reply);
      return sendPage(reply, teamPage(me, t, { [form]: failedForm(failure, values) }), failure.statusCode);
    }
  }

  app.post(
    '/teams/:id/invites',
    {
      schema: {
        params: Params,
        body: Type.Object({ email: Type.String({ maxLength: 1000 }), role: RoleField, _csrf: Csrf }),
      },
    },
    async (request, reply) => {
      const email = request.body.email.trim();
      const { role } = request.body;
      return act(
        request,
        reply,
        'invite',
        { email, role },
        async () => {
          if (!Value.Check(Email, email))
            throw new FieldError('email', 'Enter an email address, like name@example.com.');
          await inviteMember(ctx, request.user!.id, request.params.id, { email, role });
          return `/teams/${request.params.id}?notice=invited`;
        },
        (e) => (e.statusCode === 409 ? new FieldError('email', e.message, 409) : e),
      );
    },
  );

  app.post(
    '/teams/:id/invites/cancel',
    { schema: { params: Params, body: Type.Object({ email: Email, _csrf: Csrf }) } },
    async (request, reply) =>
      act(request, reply, 'invite', {}, async () => {
        await cancelInvite(ctx, request.user!.id, request.params.id, request.body.email);
        return `/teams/${request.params.id}?notice=updated`;
      }),
  );

  app.post(
    '/teams/:id/members/role',
    { schema: { params: Params, body: Type.Object({ pubkey: Hex64, role: RoleField, _csrf: Csrf }) } },
    async (request, reply) =>
      act(request, reply, 'invite', {}, async () => {
        await changeRole(ctx, request.user!.id, request.params.id, request.body.pubkey, request.body.role);
        return `/teams/${request.params.id}?notice=updated`;
      }),
  );

  app.post(
    '/teams/:id/members/remove',
    { schema: { params: Params, body: Type.Object({ pubkey: Hex64, _csrf: Csrf }) } },
    async (request, reply) =>
      act(request, reply, 'invite', {}, async () => {
        await removeMember(ctx, request.user!.id, request.params.id, request.body.pubkey);
        return request.body.pubkey === request.user!.pubkey ? '/teams' : `/teams/${request.params.id}?notice=updated`;
      }),
  );

  app.post(
    '/teams/:id/keys',
    {
      schema: {
        params: Params,
        body: Type.Object({
          name: Type.String({ maxLength: 1000 }),
          secret_key: Type.Optional(Type.String({ maxLength: 1000 })),
          _csrf: Csrf,
        }),
      },
    },
    async (request, reply) => {
      const name = request.body.name.trim();
      const secret = request.body.secret_key?.trim() || undefined;
      // The imported key is never put back into the form.
      return act(
        request,
        reply,
        'key',
        { name },
        async () => {
          if (!Value.Check(TeamName, name))
            throw new FieldError('name', 'Give the key a name of at most 100 characters.');
          if (secret !== undefined && secret.length > 200)
            throw new FieldError('secret_key', 'That is not a secret key.');
          await addTeamKey(ctx, request.user!.id, request.params.id, { name, secretKey: secret });
          return `/teams/${request.params.id}?notice=key-added`;
        },
        (e) =>
          e.reason === 'invalid_nsec'
            ? new FieldError('secret_key', 'That is not a secret key: paste an nsec1… or 64 hex characters.')
            : e.reason === 'key_taken'
              ? new FieldError('secret_key', 'The team holds this key already.', 409)
              : e,
      );
    },
  );

  app.post(
    '/teams/:id/keys/delete',
    { schema: { params: Params, body: Type.Object({ pubkey: Hex64, _csrf: Csrf }) } },
    async (request, reply) =>
      act(request, reply, 'key', {}, async () => {
        await removeTeamKey(ctx, request.user!.id, request.params.id, request.body.pubkey);
        return `/teams/${request.params.id}?notice=key-deleted`;
      }),
  );

  app.post('/teams/:id/policies', { schema: { params: Params, body: PolicyForm } }, async (request, reply) => {
    const { _csrf, ...values } = request.body;
    return act(request, reply, 'policy', values, async () => {
      await createTeamPolicy(ctx, request.user!.id, request.params.id, policyInputOfForm(request.body));
      return `/teams/${request.params.id}?notice=policy-created`;
    });
  });

  app.post(
    '/teams/:id/policies/delete',
    { schema: { params: Params, body: Type.Object({ slug: PolicySlug, _csrf: Csrf }) } },
    async (request, reply) =>
      act(request, reply, 'policy', {}, async () => {
        await removeTeamPolicy(ctx, request.user!.id, request.params.id, request.body.slug);
        return `/teams/${request.params.id}?notice=policy-deleted`;
      }),
  );

  app.post(
    '/teams/:id/authorizations/policy',
    { schema: { params: Params, body: Type.Object({ authorization_id: Uuid, policy_slug: PolicySlug, _csrf: Csrf }) } },
    async (request, reply) =>
      act(request, reply, 'authorization', {}, async () => {
        const { authorization_id, policy_slug } = request.body;
        await changeTeamAuthorizationPolicy(ctx, request.user!.id, request.params.id, authorization_id, policy_slug);
        return `/teams/${request.params.id}?notice=policy-changed`;
      }),
  );

  app.post(
    '/teams/:id/delete',
    { schema: { params: Params, body: Type.Object({ _csrf: Csrf }) } },
    async (request, reply) =>
      act(request, reply, 'invite', {}, async () => {
        await deleteTeam(ctx, request.user!.id, request.params.id);
        return '/teams';
      }),
  );

  app.post(
    '/teams/:id/authorizations',
    {
      schema: {
        params: Params,
        body: Type.Object({ key_pubkey: Hex64, ...BunkerFormFields }),
      },
    },
    async (request, reply) => {
      const body = request.body;
      const values = {
        key_pubkey: body.key_pubkey,
        app_name: body.app_name,
        policy_slug: body.policy_slug,
        relays: body.relays,
      };
      return act(
        request,
        reply,
        'authorization',
        values,
        async () => {
          const { appName, relays } = readBunkerForm(ctx.config, body);
          const created = await createTeamAuthorization(ctx, request.user!.id, request.params.id, body.key_pubkey, {
            applicationName: appName,
            policySlug: body.policy_slug,
            relays,
          });
          const flash = await putFlash(ctx, request.sessionToken!, { appName, bunkerUrl: created.bunkerUrl });
          return `/teams/${request.params.id}/authorizations/created?flash=${flash}`;
        },
        (e) =>
          e.reason === 'unknown_policy'
            ? new FieldError('policy_slug', 'Choose one of the permissions in the list.')
            : e.reason === 'no_relay' || e.reason === 'bad_relay'
              ? new FieldError('relays', sentence(e.message))
              : e,
      );
    },
  );

  app.get(
    '/teams/:id/authorizations/created',
    {
      schema: {
        params: Params,
        querystring: Type.Object({ flash: Type.Optional(Type.String({ maxLength: 64 })) }),
      },
    },
    async (request, reply) => {
      await requireRole(ctx.db, request.params.id, request.user!.id, 'admin');
      return sendCreatedBunker(ctx, request, reply, request.query.flash);
    },
  );

  app.post(
    '/teams/:id/authorizations/revoke',
    { schema: { params: Params, body: Type.Object({ authorization_id: Uuid, _csrf: Csrf }) } },
    async (request, reply) =>
      act(request, reply, 'authorization', {}, async () => {
        await revokeTeamAuthorizationAsAdmin(ctx, request.user!.id, request.params.id, request.body.authorization_id);
        return `/teams/${request.params.id}?notice=revoked`;
      }),
  );
};
