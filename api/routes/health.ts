import { Type } from 'typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { registry } from '../../shared/metrics.js';
import { METRICS_UNAUTHORIZED, metricsAllowed } from '../../shared/metrics-token.js';
import { checksBody, probe, type CheckResult } from '../../shared/readiness.js';
import type { ApiContext } from '../context.js';

const Healthy = Type.Object({ status: Type.String(), version: Type.String() });

export const healthRoutes: FastifyPluginAsyncTypebox<{
  ctx: ApiContext;
  extraReadiness?: () => Promise<CheckResult[]>;
}> = async (app, { ctx, extraReadiness }) => {
  const healthy = async () => ({ status: 'healthy', version: ctx.version });
  app.get('/health', { schema: { response: { 200: Healthy } } }, healthy);
  app.get('/healthz/startup', { schema: { response: { 200: Healthy } } }, healthy);

  app.get('/healthz/ready', async (_request, reply) => {
    const results: CheckResult[] = await Promise.all([
      probe('postgres', () => ctx.db.query('SELECT 1')),
      probe('redis', () => ctx.redis.ping()),
    ]);
    if (extraReadiness) results.push(...(await extraReadiness()));
    const failing = Object.fromEntries(results.filter(([, e]) => e !== null));
    const checks = checksBody(results);
    if (Object.keys(failing).length > 0) {
      return reply
        .status(503)
        .header('retry-after', '5')
        .send({ status: 'unavailable', error: `not ready: ${Object.keys(failing).join(', ')}`, checks });
    }
    return { status: 'ready', version: ctx.version, checks };
  });

  const metricsToken = ctx.config.METRICS_TOKEN;
  app.get(
    '/api/metrics',
    {
      schema: {
        headers: Type.Object({ authorization: Type.Optional(Type.String({ maxLength: 1024 })) }),
        // The Prometheus text format: a string with its own content type goes out as it is, unserialized.
        response: { 200: Type.String(), 401: Type.Object({ error: Type.String() }) },
      },
    },
    async (request, reply) => {
      if (!metricsAllowed(request.headers.authorization, metricsToken)) {
        return reply
          .status(METRICS_UNAUTHORIZED.status)
          .headers(METRICS_UNAUTHORIZED.headers)
          .send(METRICS_UNAUTHORIZED.body);
      }
      return reply.header('content-type', registry.contentType).send(await registry.metrics());
    },
  );
};
