// /api/teams/:id/policies…: a team's own policies, in the shapes of /api/user/policies, and moving a team
// authorization to another policy. Members read; only admins change. A non-member gets 404 for any team.
import { Type } from 'typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { findOwnedPolicy, listOwnedPolicies } from '../../database/queries/policies.js';
import type { ApiContext } from '../context.js';
import { notFound } from '../errors.js';
import { requireSession } from '../plugins/session.js';
import { ErrorBody, PolicySlug, Uuid } from '../schemas.js';
import {
  changeTeamAuthorizationPolicy,
  createTeamPolicy,
  editTeamPolicy,
  removeTeamPolicy,
  requireRole,
} from '../services/teams.js';
import { PolicyBody, PolicyOut, policyJson } from './policies.js';

const TeamParams = Type.Object({ id: Uuid });
const TeamPolicyParams = Type.Object({ id: Uuid, slug: PolicySlug });

export const teamPolicyRoutes: FastifyPluginAsyncTypebox<{ ctx: ApiContext }> = async (app, { ctx }) => {
  const session = requireSession(ctx);

  app.get(
    '/api/teams/:id/policies',
    {
      preHandler: session,
      schema: { params: TeamParams, response: { 200: Type.Array(PolicyOut), '4xx': ErrorBody } },
    },
    async (request) => {
      const teamId = request.params.id;
      await requireRole(ctx.db, teamId, request.userId!, 'member');
      return (await listOwnedPolicies(ctx.db, { teamId })).map(policyJson);
    },
  );

  app.post(
    '/api/teams/:id/policies',
    {
      preHandler: session,
      schema: { params: TeamParams, body: PolicyBody, response: { 201: PolicyOut, '4xx': ErrorBody } },
    },
    async (request, reply) => {
      const policy = await createTeamPolicy(ctx, request.userId!, request.params.id, request.body);
      return reply.status(201).send(policyJson(policy));
    },
  );

  app.get(
    '/api/teams/:id/policies/:slug',
    { preHandler: session, schema: { params: TeamPolicyParams, response: { 200: PolicyOut, '4xx': ErrorBody } } },
    async (request) => {
      const { id: teamId, slug } = request.params;
      await requireRole(ctx.db, teamId, request.userId!, 'member');
      const policy = await findOwnedPolicy(ctx.db, { teamId }, slug);
      if (!policy) throw notFound('no such policy');
      return policyJson(policy);
    },
  );

  app.put(
    '/api/teams/:id/policies/:slug',
    {
      preHandler: session,
      schema: { params: TeamPolicyParams, body: PolicyBody, response: { 200: PolicyOut, '4xx': ErrorBody } },
    },
    async (request) => {
      const { id: teamId, slug } = request.params;
      return policyJson(await editTeamPolicy(ctx, request.userId!, teamId, slug, request.body));
    },
  );

  app.delete(
    '/api/teams/:id/policies/:slug',
    { preHandler: session, schema: { params: TeamPolicyParams, response: { 204: Type.Null(), '4xx': ErrorBody } } },
    async (request, reply) => {
      await removeTeamPolicy(ctx, request.userId!, request.params.id, request.params.slug);
      return reply.status(204).send(null);
    },
  );

  app.patch(
    '/api/teams/:id/authorizations/:authorization_id',
    {
      preHandler: session,
      schema: {
        params: Type.Object({ id: Uuid, authorization_id: Uuid }),
        body: Type.Object({ policy: PolicySlug }, { additionalProperties: false }),
        response: {
          200: Type.Object({ authorization_id: Type.String(), policy: Type.String() }),
          '4xx': ErrorBody,
        },
      },
    },
    async (request) => {
      const { id: teamId, authorization_id: authorizationId } = request.params;
      await changeTeamAuthorizationPolicy(ctx, request.userId!, teamId, authorizationId, request.body.policy);
      return { authorization_id: authorizationId, policy: request.body.policy };
    },
  );
};
