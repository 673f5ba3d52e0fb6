// The signed-in user's own policies (CRUD) and switching an authorization to another policy. A policy is
// the owner's alone: another user's slug answers 404 exactly like a slug that does not exist.
import { Type } from 'typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { findOwnedPolicy, listOwnedPolicies, type CustomPolicy } from '../../database/queries/policies.js';
import type { ApiContext } from '../context.js';
import { notFound } from '../errors.js';
import { requireSession } from '../plugins/session.js';
import { changeAuthorizationPolicy, createPolicy, editPolicy, removePolicy } from '../services/custom-policies.js';
import { ErrorBody, PolicySlug, Uuid } from '../schemas.js';

/** The most kinds one policy may list (the built-ins list at most 17). */
export const MAX_POLICY_KINDS = 256;
/** The largest content size limit a policy may set: larger contents are refused by the doors anyway. */
export const MAX_CONTENT_LIMIT = 1_048_576;
/** The longest lifetime a policy may give its authorizations: ten years. */
export const MAX_LIFETIME_SECONDS = 10 * 365 * 86_400;
export const MAX_USES_LIMIT = 1_000_000_000;

/** Printable text: no control characters (PostgreSQL refuses NUL; the rest has no place in a name). */
const Text = (maxLength: number, minLength = 0) =>
  Type.String({ minLength, maxLength, pattern: '^[^\\u0000-\\u001f\\u007f]*$' });
const Kind = Type.Integer({ minimum: 0, maximum: 65_535 });
const Limit = (minimum: number, maximum: number) =>
  Type.Optional(Type.Union([Type.Integer({ minimum, maximum }), Type.Null()]));

const PermissionsInput = Type.Object(
  {
    allowed_kinds: Type.Union([Type.Array(Kind, { maxItems: MAX_POLICY_KINDS }), Type.Literal('all')]),
    encrypt: Type.Optional(Type.Boolean()),
    decrypt: Type.Optional(Type.Boolean()),
    nip04_encrypt: Type.Optional(Type.Boolean()),
    nip04_decrypt: Type.Optional(Type.Boolean()),
    nip44_encrypt: Type.Optional(Type.Boolean()),
    nip44_decrypt: Type.Optional(Type.Boolean()),
    max_content_bytes: Limit(1, MAX_CONTENT_LIMIT),
    expires_after_seconds: Limit(60, MAX_LIFETIME_SECONDS),
    max_uses: Limit(1, MAX_USES_LIMIT),
    ask: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

export const PolicyBody = Type.Object(
  { name: Text(100, 1), description: Type.Optional(Text(500)), permissions: PermissionsInput },
  { additionalProperties: false },
);

const Permissions = Type.Object({
  allowed_kinds: Type.Union([Type.Array(Type.Integer()), Type.Literal('all')]),
  encrypt: Type.Boolean(),
  decrypt: Type.Boolean(),
  nip04_encrypt: Type.Optional(Type.Boolean()),
  nip04_decrypt: Type.Optional(Type.Boolean()),
  nip44_encrypt: Type.Optional(Type.Boolean()),
  nip44_decrypt: Type.Optional(Type.Boolean()),
  max_content_bytes: Type.Optional(Type.Integer()),
  expires_after_seconds: Type.Optional(Type.Integer()),
  max_uses: Type.Optional(Type.Integer()),
  ask: Type.Optional(Type.Boolean()),
});

export const PolicyOut = Type.Object({
  slug: Type.String(),
  name: Type.String(),
  display_name: Type.String(),
  description: Type.String(),
  permissions: Permissions,
  created_at: Type.String(),
  updated_at: Type.String(),
});

export const SlugParams = Type.Object({ slug: PolicySlug });

/** A custom policy as the API shows it. */
export function policyJson(p: CustomPolicy) {
  return {
    slug: p.slug,
    name: p.display_name,
    display_name: p.display_name,
    description: p.description,
    permissions: p.permissions,
    created_at: p.created_at.toISOString(),
    updated_at: p.updated_at.toISOString(),
  };
}

export const policyRoutes: FastifyPluginAsyncTypebox<{ ctx: ApiContext }> = async (app, { ctx }) => {
  const session = requireSession(ctx);

  app.get(
    '/api/user/policies',
    { preHandler: session, schema: { response: { 200: Type.Array(PolicyOut), '4xx': ErrorBody } } },
    async (request) => (await listOwnedPolicies(ctx.db, { userId: request.userId! })).map(policyJson),
  );

  app.post(
    '/api/user/policies',
    { preHandler: session, schema: { body: PolicyBody, response: { 201: PolicyOut, '4xx': ErrorBody } } },
    async (request, reply) =>
      reply.status(201).send(policyJson(await createPolicy(ctx, { userId: request.userId! }, request.body))),
  );

  app.get(
    '/api/user/policies/:slug',
    { preHandler: session, schema: { params: SlugParams, response: { 200: PolicyOut, '4xx': ErrorBody } } },
    async (request) => {
      const policy = await findOwnedPolicy(ctx.db, { userId: request.userId! }, request.params.slug);
      if (!policy) throw notFound('no such policy');
      return policyJson(policy);
    },
  );

  app.put(
    '/api/user/policies/:slug',
    {
      preHandler: session,
      schema: { params: SlugParams, body: PolicyBody, response: { 200: PolicyOut, '4xx': ErrorBody } },
    },
    async (request) =>
      policyJson(await editPolicy(ctx, { userId: request.userId! }, request.params.slug, request.body)),
  );

  app.delete(
    '/api/user/policies/:slug',
    { preHandler: session, schema: { params: SlugParams, response: { 204: Type.Null(), '4xx': ErrorBody } } },
    async (request, reply) => {
      await removePolicy(ctx, { userId: request.userId! }, request.params.slug);
      return reply.status(204).send(null);
    },
  );

  app.patch(
    '/api/user/authorizations/:id',
    {
      preHandler: session,
      schema: {
        params: Type.Object({ id: Uuid }),
        body: Type.Object({ policy: PolicySlug }, { additionalProperties: false }),
        response: {
          200: Type.Object({ authorization_id: Type.String(), policy: Type.String() }),
          '4xx': ErrorBody,
        },
      },
    },
    async (request) => {
      const policy = await changeAuthorizationPolicy(ctx, request.userId!, request.params.id, request.body.policy);
      return { authorization_id: request.params.id, policy: policy.slug };
    },
  );
};
