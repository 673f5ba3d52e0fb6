import { Type } from 'typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { listUserAuthorizations } from '../../database/queries/authorizations.js';
import { listPolicies } from '../../database/queries/policies.js';
import type { ApiContext } from '../context.js';
import { badRequest } from '../errors.js';
import { requireSession } from '../plugins/session.js';
import { createAuthorization, revoke } from '../services/authorizations.js';
import { ErrorBody, Hex64, PolicySlug, RelayUrl, Uuid } from '../schemas.js';

const PolicySchema = Type.Object({
  slug: Type.String(),
  display_name: Type.String(),
  description: Type.String(),
  permissions: Type.Object({
    allowed_kinds: Type.Union([Type.Array(Type.Integer()), Type.Literal('all')]),
    encrypt: Type.Boolean(),
    decrypt: Type.Boolean(),
  }),
});

const CreateBunker = Type.Object(
  {
    app_name: Type.String({ minLength: 1, maxLength: 200 }),
    policy_slug: Type.Optional(PolicySlug),
    relays: Type.Optional(Type.Array(RelayUrl, { maxItems: 20 })),
    expires_at: Type.Optional(
      Type.Union([Type.String({ format: 'date-time', maxLength: 64 }), Type.Integer({ minimum: 0 }), Type.Null()]),
    ),
  },
  { additionalProperties: false },
);

const Revoke = Type.Union([
  Type.Object({ authorization_id: Uuid }, { additionalProperties: false }),
  Type.Object({ bunker_pubkey: Hex64 }, { additionalProperties: false }),
]);

export function parseExpiry(value: string | number | null | undefined): Date | null {
  if (value === undefined || value === null) return null;
  const date = typeof value === 'number' ? new Date(value * 1000) : new Date(value);
  if (Number.isNaN(date.getTime())) throw badRequest('expires_at is not a valid date');
  return date;
}

const NO_RELAY_MESSAGE =
  'A bunker link needs at least one relay and this Keyfarm has none set up: enter a wss:// relay address, or ask the operator to set BUNKER_RELAYS.';

/** A bunker link is useless without a relay to meet on: refuse when none is named and none is configured. */
export function requireSomeRelay(
  config: Pick<ApiContext['config'], 'BUNKER_RELAYS'>,
  relays: string[] | undefined,
): void {
  if (!relays?.length && config.BUNKER_RELAYS.length === 0) throw badRequest(NO_RELAY_MESSAGE, 'no_relay');
}

export const authorizationRoutes: FastifyPluginAsyncTypebox<{ ctx: ApiContext }> = async (app, { ctx }) => {
  app.get('/api/policies', { schema: { response: { 200: Type.Array(PolicySchema) } } }, async () =>
    listPolicies(ctx.db),
  );

  app.post(
    '/api/user/bunker/create',
    {
      preHandler: requireSession(ctx),
      schema: {
        body: CreateBunker,
        response: {
          201: Type.Object({
            authorization_id: Type.String(),
            bunker_url: Type.String(),
            bunker_pubkey: Type.String(),
          }),
          '4xx': ErrorBody,
        },
      },
    },
    async (request, reply) => {
      const body = request.body;
      requireSomeRelay(ctx.config, body.relays);
      const created = await createAuthorization(ctx, {
        userId: request.userId!,
        applicationName: body.app_name,
        policySlug: body.policy_slug,
        relays: body.relays,
        expiresAt: parseExpiry(body.expires_at),
      });
      return reply.status(201).send({
        authorization_id: created.authorizationId,
        bunker_url: created.bunkerUrl,
        bunker_pubkey: created.bunkerPubkey,
      });
    },
  );

  app.get(
    '/api/user/sessions',
    {
      preHandler: requireSession(ctx),
      schema: {
        response: {
          200: Type.Array(
            Type.Object({
              authorization_id: Type.String(),
              application_name: Type.String(),
              bunker_pubkey: Type.String(),
              policy: Type.String(),
              client_pubkey: Type.Union([Type.String(), Type.Null()]),
              created_at: Type.String(),
              last_activity: Type.Union([Type.String(), Type.Null()]),
              activity_count: Type.Integer(),
              revoked_at: Type.Union([Type.String(), Type.Null()]),
            }),
          ),
          '4xx': ErrorBody,
        },
      },
    },
    async (request) => {
      const rows = await listUserAuthorizations(ctx.db, request.userId!);
      return rows.map((a) => ({
        authorization_id: a.id,
        application_name: a.applicationName,
        bunker_pubkey: a.bunkerPubkey,
        policy: a.policySlug,
        client_pubkey: a.clientPubkey,
        created_at: a.createdAt.toISOString(),
        last_activity: a.lastActivity?.toISOString() ?? null,
        activity_count: a.activityCount,
        revoked_at: a.revokedAt?.toISOString() ?? null,
      }));
    },
  );

  app.post(
    '/api/user/sessions/revoke',
    {
      preHandler: requireSession(ctx),
      schema: {
        body: Revoke,
        response: { 200: Type.Object({ ok: Type.Boolean(), authorization_id: Type.String() }), '4xx': ErrorBody },
      },
    },
    async (request) => {
      const body = request.body;
      const id = await revoke(
        ctx,
        request.userId!,
        'authorization_id' in body ? { id: body.authorization_id } : { bunkerPubkey: body.bunker_pubkey },
      );
      return { ok: true, authorization_id: id };
    },
  );
};
