// /api/teams…: teams and their shared keys, in Keycast's shapes where they are sound (docs/TEAMS.md,
// docs/KEYCAST.md). Members see the team; only admins change it. A non-member gets 404 for any team.
import { Type } from 'typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import {
  findTeam,
  findTeamKey,
  listInvites,
  listMembers,
  listTeamAuthorizations,
  listTeamKeys,
  listTeamPolicies,
  listUserTeams,
  type TeamAuthorization,
  type TeamKey,
} from '../../database/queries/teams.js';
import type { ApiContext } from '../context.js';
import { notFound } from '../errors.js';
import { requireSession } from '../plugins/session.js';
import { Email, ErrorBody, Hex64, PolicySlug, RelayUrl, Uuid } from '../schemas.js';
import {
  acceptInvite,
  addTeamKey,
  cancelInvite,
  changeRole,
  createTeam,
  createTeamAuthorization,
  deleteTeam,
  inviteMember,
  removeMember,
  removeTeamKey,
  renameTeamAsAdmin,
  requireRole,
  revokeTeamAuthorizationAsAdmin,
  NO_SUCH_TEAM,
} from '../services/teams.js';
import { MailedToken } from './email.js';
import { parseExpiry, requireSomeRelay } from './authorizations.js';

/** A team's or a key's name: printable, one line. */
export const TeamName = Type.String({ minLength: 1, maxLength: 100, pattern: '^[^\\u0000-\\u001f\\u007f]+$' });
export const Role = Type.Union([Type.Literal('admin'), Type.Literal('member')]);
const TeamParams = Type.Object({ id: Uuid });
const MemberParams = Type.Object({ id: Uuid, pubkey: Hex64 });
const KeyParams = Type.Object({ id: Uuid, pubkey: Hex64 });
const AuthorizationParams = Type.Object({ id: Uuid, authorization_id: Uuid });
const Ok = Type.Object({ ok: Type.Boolean() });
const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);

const TeamSchema = Type.Object({ id: Type.String(), name: Type.String(), created_at: Type.String() });
const MyTeamSchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  created_at: Type.String(),
  role: Role,
  member_count: Type.Integer(),
  key_count: Type.Integer(),
});
const KeySchema = Type.Object({ name: Type.String(), pubkey: Type.String(), created_at: Type.String() });
const AuthorizationSchema = Type.Object({
  authorization_id: Type.String(),
  application_name: Type.String(),
  policy: Type.String(),
  bunker_pubkey: Type.String(),
  key_pubkey: Type.String(),
  key_name: Type.String(),
  created_by: Type.String(),
  client_pubkey: Nullable(Type.String()),
  created_at: Type.String(),
  last_activity: Nullable(Type.String()),
  activity_count: Type.Integer(),
  expires_at: Nullable(Type.String()),
  revoked_at: Nullable(Type.String()),
});
const TeamWithRelations = Type.Object({
  team: TeamSchema,
  role: Role,
  team_users: Type.Array(
    Type.Object({ user_pubkey: Type.String(), email: Type.String(), role: Role, created_at: Type.String() }),
  ),
  stored_keys: Type.Array(KeySchema),
  policies: Type.Array(Type.Object({ slug: Type.String(), display_name: Type.String() })),
  /** Pending invites; only admins see them (members get an empty list). */
  invites: Type.Array(Type.Object({ email: Type.String(), role: Role, expires_at: Type.String() })),
});

const CreateAuthorization = Type.Object(
  {
    app_name: Type.String({ minLength: 1, maxLength: 200 }),
    policy_slug: Type.Optional(PolicySlug),
    relays: Type.Optional(Type.Array(RelayUrl, { maxItems: 20 })),
    expires_at: Type.Optional(
      Type.Union([Type.String({ format: 'date-time', maxLength: 64 }), Type.Integer({ minimum: 0 }), Type.Null()]),
    ),
    issue_token: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

const keyJson = (k: TeamKey) => ({ name: k.name, pubkey: k.pubkey, created_at: k.createdAt.toISOString() });

export const authorizationJson = (a: TeamAuthorization) => ({
  authorization_id: a.id,
  application_name: a.applicationName,
  policy: a.policySlug,
  bunker_pubkey: a.bunkerPubkey,
  key_pubkey: a.keyPubkey,
  key_name: a.keyName,
  created_by: a.userEmail,
  client_pubkey: a.clientPubkey,
  created_at: a.createdAt.toISOString(),
  last_activity: a.lastActivity?.toISOString() ?? null,
  activity_count: Number(a.activityCount),
  expires_at: a.expiresAt?.toISOString() ?? null,
  revoked_at: a.revokedAt?.toISOString() ?? null,
});

/** Everything a member sees of a team (invites only for admins). */
export async function teamWithRelations(ctx: ApiContext, userId: string, teamId: string) {
  const role = await requireRole(ctx.db, teamId, userId, 'member');
  const team = await findTeam(ctx.db, teamId);
  if (!team) throw notFound(NO_SUCH_TEAM);
  // One after another: a request holds one pool connection at a time.
  const members = await listMembers(ctx.db, teamId);
  const keys = await listTeamKeys(ctx.db, teamId);
  const policies = await listTeamPolicies(ctx.db, teamId);
  const invites = role === 'admin' ? await listInvites(ctx.db, teamId) : [];
  return {
    team: { id: team.id, name: team.name, created_at: team.createdAt.toISOString() },
    role,
    team_users: members.map((m) => ({
      user_pubkey: m.pubkey,
      email: m.email,
      role: m.role,
      created_at: m.createdAt.toISOString(),
    })),
    stored_keys: keys.map(keyJson),
    policies: policies.map((p) => ({ slug: p.slug, display_name: p.displayName })),
    invites: invites.map((i) => ({ email: i.email, role: i.role, expires_at: i.expiresAt.toISOString() })),
  };
}

export const teamRoutes: FastifyPluginAsyncTypebox<{ ctx: ApiContext }> = async (app, { ctx }) => {
  const session = requireSession(ctx);

  app.get(
    '/api/teams',
    { preHandler: session, schema: { response: { 200: Type.Array(MyTeamSchema), '4xx': ErrorBody } } },
    async (request) =>
      (await listUserTeams(ctx.db, request.userId!)).map((t) => ({
        id: t.id,
        name: t.name,
        created_at: t.createdAt.toISOString(),
        role: t.role,
        member_count: t.memberCount,
        key_count: t.keyCount,
      })),
  );

  app.post(
    '/api/teams',
    {
      preHandler: session,
      schema: {
        body: Type.Object({ name: TeamName }, { additionalProperties: false }),
        response: { 201: TeamWithRelations, '4xx': ErrorBody },
      },
    },
    async (request, reply) => {
      const teamId = await createTeam(ctx, request.userId!, request.body.name.trim());
      return reply.status(201).send(await teamWithRelations(ctx, request.userId!, teamId));
    },
  );

  app.get(
    '/api/teams/:id',
    { preHandler: session, schema: { params: TeamParams, response: { 200: TeamWithRelations, '4xx': ErrorBody } } },
    async (request) => teamWithRelations(ctx, request.userId!, request.params.id),
  );

  app.put(
    '/api/teams/:id',
    {
      preHandler: session,
      schema: {
        params: TeamParams,
        body: Type.Object({ name: TeamName }, { additionalProperties: false }),
        response: { 200: TeamWithRelations, '4xx': ErrorBody },
      },
    },
    async (request) => {
      await renameTeamAsAdmin(ctx, request.userId!, request.params.id, request.body.name.trim());
      return teamWithRelations(ctx, request.userId!, request.params.id);
    },
  );

  app.delete(
    '/api/teams/:id',
    { preHandler: session, schema: { params: TeamParams, response: { 200: Ok, '4xx': ErrorBody } } },
    async (request) => {
      await deleteTeam(ctx, request.userId!, request.params.id);
      return { ok: true };
    },
  );

  app.post(
    '/api/teams/:id/invites',
    {
      preHandler: session,
      schema: {
        params: TeamParams,
        body: Type.Object({ email: Email, role: Type.Optional(Role) }, { additionalProperties: false }),
        response: {
          202: Type.Object({ ok: Type.Boolean(), email: Type.String(), expires_at: Type.String() }),
          '4xx': ErrorBody,
        },
      },
    },
    async (request, reply) => {
      const { email, role } = request.body;
      const { expiresAt } = await inviteMember(ctx, request.userId!, request.params.id, {
        email,
        role: role ?? 'member',
      });
      return reply.status(202).send({ ok: true, email: email.trim(), expires_at: expiresAt.toISOString() });
    },
  );

  app.post(
    '/api/teams/:id/invites/cancel',
    {
      preHandler: session,
      schema: {
        params: TeamParams,
        body: Type.Object({ email: Email }, { additionalProperties: false }),
        response: { 200: Ok, '4xx': ErrorBody },
      },
    },
    async (request) => {
      await cancelInvite(ctx, request.userId!, request.params.id, request.body.email.trim());
      return { ok: true };
    },
  );

  app.post(
    '/api/teams/invites/accept',
    {
      preHandler: session,
      schema: {
        body: Type.Object({ token: MailedToken }, { additionalProperties: false }),
        response: { 200: Type.Object({ team_id: Type.String(), role: Role }), '4xx': ErrorBody },
      },
    },
    async (request) => {
      const joined = await acceptInvite(ctx, request.userId!, request.body.token);
      return { team_id: joined.teamId, role: joined.role };
    },
  );

  app.put(
    '/api/teams/:id/users/:pubkey',
    {
      preHandler: session,
      schema: {
        params: MemberParams,
        body: Type.Object({ role: Role }, { additionalProperties: false }),
        response: { 200: Ok, '4xx': ErrorBody },
      },
    },
    async (request) => {
      await changeRole(ctx, request.userId!, request.params.id, request.params.pubkey, request.body.role);
      return { ok: true };
    },
  );

  app.delete(
    '/api/teams/:id/users/:pubkey',
    { preHandler: session, schema: { params: MemberParams, response: { 200: Ok, '4xx': ErrorBody } } },
    async (request) => {
      await removeMember(ctx, request.userId!, request.params.id, request.params.pubkey);
      return { ok: true };
    },
  );

  app.get(
    '/api/teams/:id/keys',
    { preHandler: session, schema: { params: TeamParams, response: { 200: Type.Array(KeySchema), '4xx': ErrorBody } } },
    async (request) => {
      await requireRole(ctx.db, request.params.id, request.userId!, 'member');
      return (await listTeamKeys(ctx.db, request.params.id)).map(keyJson);
    },
  );

  app.post(
    '/api/teams/:id/keys',
    {
      preHandler: session,
      schema: {
        params: TeamParams,
        body: Type.Object(
          { name: TeamName, secret_key: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })) },
          { additionalProperties: false },
        ),
        response: { 201: KeySchema, '4xx': ErrorBody },
      },
    },
    async (request, reply) => {
      const { name, secret_key } = request.body;
      const key = await addTeamKey(ctx, request.userId!, request.params.id, {
        name: name.trim(),
        secretKey: secret_key,
      });
      return reply.status(201).send(keyJson(key));
    },
  );

  app.get(
    '/api/teams/:id/keys/:pubkey',
    {
      preHandler: session,
      schema: {
        params: KeyParams,
        response: {
          200: Type.Object({ stored_key: KeySchema, authorizations: Type.Array(AuthorizationSchema) }),
          '4xx': ErrorBody,
        },
      },
    },
    async (request) => {
      const { id, pubkey } = request.params;
      await requireRole(ctx.db, id, request.userId!, 'member');
      const key = await findTeamKey(ctx.db, id, pubkey);
      if (!key) throw notFound('no such key in this team');
      const authorizations = (await listTeamAuthorizations(ctx.db, id)).filter((a) => a.keyPubkey === pubkey);
      return { stored_key: keyJson(key), authorizations: authorizations.map(authorizationJson) };
    },
  );

  app.delete(
    '/api/teams/:id/keys/:pubkey',
    { preHandler: session, schema: { params: KeyParams, response: { 200: Ok, '4xx': ErrorBody } } },
    async (request) => {
      await removeTeamKey(ctx, request.userId!, request.params.id, request.params.pubkey);
      return { ok: true };
    },
  );

  app.post(
    '/api/teams/:id/keys/:pubkey/authorizations',
    {
      preHandler: session,
      schema: {
        params: KeyParams,
        body: CreateAuthorization,
        response: {
          201: Type.Object({
            authorization_id: Type.String(),
            bunker_url: Type.String(),
            bunker_pubkey: Type.String(),
            key_pubkey: Type.String(),
            policy: Type.String(),
            access_token: Type.Optional(Type.String()),
            refresh_token: Type.Optional(Type.String()),
            token_type: Type.Optional(Type.Literal('Bearer')),
          }),
          '4xx': ErrorBody,
        },
      },
    },
    async (request, reply) => {
      const { id, pubkey } = request.params;
      const body = request.body;
      requireSomeRelay(ctx.config, body.relays);
      const created = await createTeamAuthorization(ctx, request.userId!, id, pubkey, {
        applicationName: body.app_name,
        policySlug: body.policy_slug,
        relays: body.relays,
        expiresAt: parseExpiry(body.expires_at),
        issueToken: body.issue_token,
      });
      return reply.status(201).send({
        authorization_id: created.authorizationId,
        bunker_url: created.bunkerUrl,
        bunker_pubkey: created.bunkerPubkey,
        key_pubkey: pubkey,
        policy: created.policy.slug,
        ...(created.tokens && {
          access_token: created.tokens.access,
          refresh_token: created.tokens.refresh,
          token_type: 'Bearer' as const,
        }),
      });
    },
  );

  app.get(
    '/api/teams/:id/authorizations',
    {
      preHandler: session,
      schema: { params: TeamParams, response: { 200: Type.Array(AuthorizationSchema), '4xx': ErrorBody } },
    },
    async (request) => {
      await requireRole(ctx.db, request.params.id, request.userId!, 'member');
      return (await listTeamAuthorizations(ctx.db, request.params.id)).map(authorizationJson);
    },
  );

  app.post(
    '/api/teams/:id/authorizations/:authorization_id/revoke',
    { preHandler: session, schema: { params: AuthorizationParams, response: { 200: Ok, '4xx': ErrorBody } } },
    async (request) => {
      await revokeTeamAuthorizationAsAdmin(ctx, request.userId!, request.params.id, request.params.authorization_id);
      return { ok: true };
    },
  );
};
