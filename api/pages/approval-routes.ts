// The approval page: the signed-in user sees one request of theirs that waits for them, in plain words,
// and approves it once, always (for its kind, on this app), or denies it. The decision is one guarded
// update (their own, still pending, unexpired approval), so another user, a second tab or a replayed form
// changes nothing. A NIP-46 request is then answered over the relays (relay-ingest sends it through again);
// a grant is in force on both doors at once (the eviction broadcast).
import { Type } from 'typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { decideApproval, findUserApproval } from '../../database/queries/approvals.js';
import { APPROVAL_ID_PATTERN, openSummary } from '../../shared/approvals.js';
import { publishEviction } from '../../shared/evictions.js';
import { announceApprovalDecided } from '../../shared/nip46/channels.js';
import type { ApiContext } from '../context.js';
import { notFound } from '../errors.js';
import { requirePageUser, signedIn } from './guard.js';
import { sendPage } from './layout.js';
import { approvalOutcomePage, approvalPage } from './views-approvals.js';

const Params = Type.Object({ id: Type.String({ pattern: APPROVAL_ID_PATTERN }) });
const GONE = 'There is no such request waiting for you: it was decided, it expired, or the link is wrong.';

export const approvalPages: FastifyPluginAsyncTypebox<{ ctx: ApiContext }> = async (app, { ctx }) => {
  app.addHook('preHandler', requirePageUser(ctx));

  app.get('/approve/:id', { schema: { params: Params } }, async (request, reply) => {
    const a = await findUserApproval(ctx.db, request.params.id, request.user!.id);
    if (!a) throw notFound(GONE);
    const me = signedIn(request, reply);
    if (a.status !== 'pending') return sendPage(reply, approvalOutcomePage(me, a, a.status));
    if (a.expired) return sendPage(reply, approvalOutcomePage(me, a, 'expired'), 410);
    return sendPage(reply, approvalPage(me, a, openSummary(ctx.sealer, a.id, a.summary)));
  });

  app.post(
    '/approve/:id',
    {
      schema: {
        params: Params,
        body: Type.Object({
          decision: Type.Union([Type.Literal('once'), Type.Literal('always'), Type.Literal('deny')]),
          _csrf: Type.String({ maxLength: 512 }),
        }),
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const decided = await decideApproval(
        ctx.db,
        id,
        request.user!.id,
        request.body.decision,
        ctx.config.APPROVAL_TTL_SECONDS,
      );
      if (!decided) throw notFound(GONE);
      if (decided.grantedKind !== undefined)
        await publishEviction(ctx.redis, ctx.names.evictChannel(), {
          type: 'authorization',
          authorizationId: decided.authorizationId,
        });
      if (decided.door === 'nip46') await announceApprovalDecided(ctx.redis, ctx.config.KEY_PREFIX, id);
      request.log.info(
        { approvalId: id, authorizationId: decided.authorizationId, decision: request.body.decision },
        'approval decided',
      );
      return reply.redirect(`/approve/${id}`, 303);
    },
  );
};
