// POST /api/nostr: the HTTP RPC door. Authenticate, check the policy here (a denial costs no queue
// trip), then hand the call to the user's shard and wait for its answer.
import { randomUUID } from 'node:crypto';
import { Type } from 'typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { RpcCall, RpcMethod } from '../../shared/farm/jobs.js';
import { RPC_METHODS, RpcParamsError, parseRpcCall } from '../../shared/farm/rpc-params.js';
import { metrics } from '../../shared/metrics.js';
import { DENIED_BY_POLICY, callRefusal, countsAsUse, policyAsks } from '../../shared/policy.js';
import { PolicyUses, USES_EXHAUSTED } from '../../shared/policy-uses.js';
import { shardOf } from '../../shared/shard.js';
import type { ApiContext } from '../context.js';
import { HttpError, badRequest, forbidden, unauthorized } from '../errors.js';
import { bearerToken } from '../plugins/session.js';
import { askForApproval, requestedWait } from '../services/approvals.js';
import { hashToken } from '../services/tokens.js';
import { ErrorBody } from '../schemas.js';

const RpcBody = Type.Object({
  method: Type.Union(RPC_METHODS.map((m) => Type.Literal(m))),
  params: Type.Optional(Type.Array(Type.Unknown(), { maxItems: 8 })),
  id: Type.Optional(Type.Union([Type.String({ maxLength: 128 }), Type.Number()])),
});

export const RPC_ROUTE = '/api/nostr';

/** A refusal; a call waiting for its user's approval also names where they approve it. */
const ApprovalRefusalBody = Type.Object({
  error: Type.String(),
  reason: Type.Optional(Type.Union([Type.Literal('approval_required'), Type.Literal('approval_denied')])),
  approval_url: Type.Optional(Type.String()),
  approval_id: Type.Optional(Type.String()),
});

export const rpcRoutes: FastifyPluginAsyncTypebox<{ ctx: ApiContext }> = async (app, { ctx }) => {
  const uses = new PolicyUses(ctx.redis, ctx.names.prefix);
  app.post(
    RPC_ROUTE,
    {
      schema: {
        body: RpcBody,
        response: {
          200: Type.Object({ result: Type.Unknown() }),
          403: ApprovalRefusalBody,
          '4xx': ErrorBody,
          '5xx': ErrorBody,
        },
      },
      onResponse: (request, reply, done) => {
        const method = (request.body as { method?: string } | undefined)?.method ?? 'invalid';
        const label = RPC_METHODS.includes(method as RpcMethod) ? method : 'invalid';
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
      if (maxUses !== undefined && countsAsUse(call.method) && !(await uses.takeOne(acting.id, maxUses)))
        throw forbidden(USES_EXHAUSTED);
      if (call.method === 'ping') return { result: 'pong' };
      if (call.method === 'get_public_key') return { result: acting.userPubkey };

      const answer = await ctx.rpc.call(shardOf(acting.userPubkey, ctx.config.SHARD_COUNT), {
        id: randomUUID(),
        traceId: request.id,
        authorizationId: acting.id,
        keyId: acting.userKeyId,
        pubkey: acting.userPubkey,
        call,
      });
      if (answer.ok) return { result: answer.result };
      const headers: Record<string, string> = answer.status === 503 ? { 'retry-after': '1' } : {};
      throw new HttpError(answer.status, answer.error, headers);
    },
  );
};
