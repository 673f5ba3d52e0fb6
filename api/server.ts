// The api's Fastify app: plugins and routes over an ApiContext. Building it does no I/O.
import { randomUUID } from 'node:crypto';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type RouteOptions } from 'fastify';
import cookie from '@fastify/cookie';
import formbody from '@fastify/formbody';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { ApiContext } from './context.js';
import { installErrorHandler, type DependencyState } from './errors.js';
import { installOpenApi } from './openapi.js';
import { lazyChildLogger } from './request-logger.js';
import { webPages } from './pages/index.js';
import { installNulGuard } from './plugins/no-nul.js';
import { installRateLimits } from './plugins/rate-limits.js';
import { installWebSecurity } from './plugins/web-security.js';
import { trustProxyOption } from '../shared/net/client-address.js';
import { probe, runReadinessChecks } from '../shared/readiness.js';
import { isUp } from '../shared/redis.js';
import type { Db } from '../database/pool.js';
import { accountRoutes } from './routes/accounts.js';
import { adminRoutes } from './routes/admin.js';
import { authorizationRoutes } from './routes/authorizations.js';
import { policyRoutes } from './routes/policies.js';
import { emailRoutes } from './routes/email.js';
import { healthRoutes } from './routes/health.js';
import { oauthRoutes } from './routes/oauth.js';
import { nip46Routes } from './routes/nip46.js';
import { RPC_ROUTE, rpcRoutes } from './routes/rpc.js';
import { teamPolicyRoutes } from './routes/team-policies.js';
import { teamRoutes } from './routes/teams.js';
import { metrics } from '../shared/metrics.js';

export const BODY_LIMIT = 1024 * 1024;
const TRACE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Whether PostgreSQL answers, asked at most once a second however many requests fail at once. */
function databaseProbe(db: Db): () => Promise<boolean> {
  let last: { at: number; up: Promise<boolean> } | undefined;
  return () => {
    if (!last || Date.now() - last.at > 1000) {
      last = {
        at: Date.now(),
        up: probe('postgres', () => db.query('SELECT 1')).then(([, failure]) => failure === null),
      };
    }
    return last.up;
  };
}

export interface BuildHooks {
  /** Sees every route as it is registered (the OpenAPI test compares them with the document). */
  onRoute?: (route: RouteOptions) => void;
}

export async function buildApi(ctx: ApiContext, hooks: BuildHooks = {}): Promise<FastifyInstance> {
  // pino's Logger is a FastifyBaseLogger; the cast only widens the instance's logger type.
  const app = Fastify({
    loggerInstance: ctx.logger as FastifyBaseLogger,
    bodyLimit: BODY_LIMIT,
    // X-Forwarded-For names the client only when TRUST_PROXY trusts the proxies that set it.
    trustProxy: trustProxyOption(ctx.config.TRUST_PROXY),
    requestIdHeader: false,
    // x-trace-id is honoured when well formed, made otherwise, and carried into every log line.
    genReqId: (req) => {
      const given = req.headers['x-trace-id'];
      return typeof given === 'string' && TRACE_ID.test(given) ? given : randomUUID();
    },
    logController: new LogController({ requestIdLogLabel: 'traceId', disableRequestLogging: true }),
    childLoggerFactory: lazyChildLogger,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
    // While closing, a request already on an open connection is still served (with Connection: close).
    return503OnClosing: false,
  }).withTypeProvider<TypeBoxTypeProvider>();

  // Hooks on every request take a callback rather than return a promise: one allocation less each.
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-trace-id', request.id);
    done();
  });
  app.addHook('onResponse', (request, reply, done) => {
    // The RPC route counts itself (keyfarm_http_rpc_requests_total): one counter per request at most.
    const route = request.routeOptions.url;
    if (route !== RPC_ROUTE) metrics.httpRequests.inc({ route: route ?? 'unmatched', status: reply.statusCode });
    if (reply.statusCode >= 400 || ctx.logger.isLevelEnabled('debug')) {
      request.log.info(
        { method: request.method, url: request.url.split('?')[0], status: reply.statusCode, ms: reply.elapsedTime },
        'request',
      );
    }
    done();
  });
  if (hooks.onRoute) app.addHook('onRoute', hooks.onRoute);
  const dependencies: DependencyState = { redisUp: () => isUp(ctx.redis), databaseUp: databaseProbe(ctx.db) };
  installErrorHandler(app as unknown as FastifyInstance, dependencies);
  await installOpenApi(app as unknown as FastifyInstance, ctx.version);
  await app.register(cookie);
  await app.register(formbody, { bodyLimit: BODY_LIMIT });
  await installWebSecurity(app as unknown as FastifyInstance, ctx.config);
  installNulGuard(app as unknown as FastifyInstance, new Set([RPC_ROUTE]));
  await installRateLimits(app as unknown as FastifyInstance, ctx.config, ctx.redis);
  await app.register(healthRoutes, { ctx, extraReadiness: runReadinessChecks });
  await app.register(accountRoutes, { ctx });
  await app.register(emailRoutes, { ctx });
  await app.register(authorizationRoutes, { ctx });
  await app.register(policyRoutes, { ctx });
  await app.register(oauthRoutes, { ctx });
  await app.register(rpcRoutes, { ctx });
  await app.register(nip46Routes, { ctx });
  await app.register(teamRoutes, { ctx });
  await app.register(teamPolicyRoutes, { ctx });
  await app.register(webPages, { ctx, dependencies });
  await app.register(adminRoutes, { ctx });
  return app as unknown as FastifyInstance;
}
