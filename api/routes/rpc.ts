// POST /api/nostr: the HTTP RPC door. Authenticate, check the policy here (a denial costs no queue
// trip), then hand the call to the user's shard and wait for its answer.
// A farm failure says what became of the call: `not_queued` (503, Retry-After: nothing runs it, safe to
// retry) or `outcome_unknown` (504: it may have been signed; check before retrying). While the user's
// shard refuses for lack of room and the token's lookup is in memory, the call is refused before its body
// is read.
import { randomBytes } from 'node:crypto';
import { Type } from 'typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { ItemResult, RpcCall, RpcMethod } from '../../shared/farm/jobs.js';
import { RPC_METHODS, RpcParamsError, parseRpcCall } from '../../shared/farm/rpc-params.js';
import { metrics } from '../../shared/metrics.js';
import { DENIED_BY_POLICY, USES_EXHAUSTED, callRefusal, countsAsUse, policyAsks } from '../../shared/policy.js';
import { shardOf } from '../../shared/shard.js';
import type { ApiContext } from '../context.js';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { badRequest, forbidden, unauthorized } from '../errors.js';
import { bearerToken } from '../plugins/session.js';
import { askForApproval, requestedWait } from '../services/approvals.js';
import { hashToken } from '../services/tokens.js';
import { ErrorBody } from '../schemas.js';
import type { ActingAuthorization } from '../../database/queries/authorizations.js';
import { takeAuthorizationUse } from '../../database/queries/authorization-uses.js';

/** An error of the farm says what became of the call, and whether trying again is safe. */
const RpcErrorBody = Type.Object({
  error: Type.String(),
  reason: Type.Optional(Type.Union([Type.Literal('not_queued'), Type.Literal('outcome_unknown')])),
  retryable: Type.Optional(Type.Boolean()),
});

/** Requests refused before their body was read (their method is unknown: metric label `unread`). */
const refusedUnread = new WeakSet<FastifyRequest>();

/** Seconds for Retry-After: at least one. */
const retryAfter = (ms: number | undefined) => String(Math.max(1, Math.ceil((ms ?? 1000) / 1000)));

/** The answer to a call the farm did not answer with a result. */
function sendFarmFailure(reply: FastifyReply, answer: Extract<ItemResult, { ok: false }>): FastifyReply {
  if (answer.outcome === 'not_queued') {
    return reply
      .status(503)
      .header('retry-after', retryAfter(answer.retryAfterMs))
      .send({ error: answer.error, reason: 'not_queued', retryable: true });
  }
  if (answer.outcome === 'unknown') {
    return reply.status(504).send({ error: answer.error, reason: 'outcome_unknown', retryable: false });
  }
  // The worker's own answer (a key that cannot be loaded, a worker that failed): nothing was signed.
  if (answer.status === 503) reply.header('retry-after', '1');
  return reply.status(answer.status).send({ error: answer.error });
}

/** The cached authorization a token acts under, when it is usable (no database read). */
function cachedActing(ctx: ApiContext, token: string | undefined): ActingAuthorization | undefined {
  if (!token || token.length > 512) return undefined;
  const acting = ctx.acting.peek(hashToken(token));
  if (!acting || acting.tokenRevoked || acting.revokedAt) return undefined;
  if (acting.expiresAt && acting.expiresAt.getTime() <= Date.now()) return undefined;
  return acting;
}

const RpcBody = Type.Object({
  method: Type.Union(RPC_METHODS.map((m) => Type.Literal(m))),
  params: Type.Optional(Type.Array(Type.Unknown(), { maxItems: 8 })),
  id: Type.Optional(Type.Union([Type.String({ maxLength: 128 }), Type.Number()])),
});

export const RPC_ROUTE = '/api/nostr';

/**
 * Ids of the calls this process puts in jobs: a reply's results are matched to their calls within their
 * job, so an id needs only be unique here (not secret). A counter under a random prefix: randomUUID
 * allocated about 600 bytes of intermediate strings per call.
 */
const ITEM_ID_PREFIX = `${randomBytes(6).toString('base64url')}.`;
let itemSeq = 0;
const nextItemId = () => ITEM_ID_PREFIX + (++itemSeq).toString(36);

/** A refusal; a call waiting for its user's approval also names where they approve it. */
const ApprovalRefusalBody = Type.Object({
  error: Type.String(),
  reason: Type.Optional(Type.Union([Type.Literal('approval_required'), Type.Literal('approval_denied')])),
  approval_url: Type.Optional(Type.String()),
  approval_id: Type.Optional(Type.String()),
});

export const rpcRoutes: FastifyPluginAsyncTypebox<{ ctx: ApiContext }> = async (app, { ctx }) => {
  // The user's shard, found once per cached authorization rather than with a SHA-256 per request.
  const shards = new WeakMap<ActingAuthorization, number>();
  const shardFor = (acting: ActingAuthorization): number => {
    let shard = shards.get(acting);
    if (shard === undefined) shards.set(acting, (shard = shardOf(acting.userPubkey, ctx.config.SHARD_COUNT)));
    return shard;
  };
  app.post(
    RPC_ROUTE,
    {
      schema: {
        body: RpcBody,
        response: {
          200: Type.Object({ result: Type.Unknown() }),
          403: ApprovalRefusalBody,
          '4xx': ErrorBody,
          '5xx': RpcErrorBody,
        },
      },
      // Before the body is read or parsed: a flood at a saturated shard costs no parse and no Redis trip.
      onRequest: (request, reply, done) => {
        // Nothing held (the usual case): no token hash nor cache look-up on the hot path.
        if (!ctx.rpc.holdsAny()) return done();
        const acting = cachedActing(ctx, bearerToken(request));
        const refusing = acting ? ctx.rpc.refusingFor(shardFor(acting)) : 0;
        if (refusing <= 0) return done();
        metrics.backpressureRejected.inc({ door: 'http' });
        refusedUnread.add(request);
        sendFarmFailure(reply, {
          id: '',
          ok: false,
          status: 503,
          error: 'shard overloaded',
          outcome: 'not_queued',
          retryAfterMs: refusing,
        });
      },
      onResponse: (request, reply, done) => {
        const method = (request.body as { method?: string } | undefined)?.method ?? 'invalid';
        let label = RPC_METHODS.includes(method as RpcMethod) ? method : 'invalid';
        if (refusedUnread.has(request)) label = 'unread';
        metrics.httpRpcRequests.inc({ method: label, status: reply.statusCode });
        metrics.rpcDuration.observe({ door: 'http', method: label }, reply.elapsedTime / 1000);
        done();
      },
    },
    async (request, reply) => {
      const token = bearerToken(request);
      if (!token || token.length > 512) {
        metrics.httpRpcAuthErrors.inc();
        throw unauthorized('a bearer access token is required');
      }
      const acting = await ctx.acting.get(hashToken(token));
      if (!acting || (acting.tokenRevoked && !acting.revokedAt)) {
        metrics.httpRpcAuthErrors.inc();
        throw unauthorized('invalid or expired access token');
      }
      if (acting.revokedAt) throw forbidden('authorization revoked');
      if (acting.expiresAt && acting.expiresAt.getTime() <= Date.now()) throw forbidden('authorization expired');

      let call: RpcCall;
      try {
        call = parseRpcCall(request.body.method, request.body.params ?? []);
      } catch (err) {
        if (err instanceof RpcParamsError) throw badRequest(err.message);
        throw err;
      }
      const refusal = callRefusal(acting.permissions, call, acting.grantedKinds);
      if (refusal !== undefined) {
        if (refusal !== DENIED_BY_POLICY || !policyAsks(acting.permissions)) throw forbidden(refusal);
        const wait = requestedWait(request.headers.prefer, ctx.config.APPROVAL_WAIT_MAX_SECONDS);
        const asked = await askForApproval(ctx, acting, call, wait, request.raw);
        if (asked !== 'approved') return reply.code(403).send(asked);
      }
      const maxUses = acting.permissions.max_uses;
      if (
        maxUses !== undefined &&
        countsAsUse(call.method) &&
        !(await takeAuthorizationUse(ctx.db, acting.id, maxUses))
      )
        throw forbidden(USES_EXHAUSTED);
      if (call.method === 'ping') return { result: 'pong' };
      if (call.method === 'get_public_key') return { result: acting.userPubkey };

      const answer = await ctx.rpc.call(shardFor(acting), {
        id: nextItemId(),
        traceId: request.id,
        authorizationId: acting.id,
        keyId: acting.userKeyId,
        pubkey: acting.userPubkey,
        call,
      });
      if (answer.ok) return { result: answer.result };
      return sendFarmFailure(reply, answer);
    },
  );
};
