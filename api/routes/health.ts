import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { registry } from '../../shared/metrics.js';
import { checksBody, probe, type CheckResult } from '../../shared/readiness.js';
import type { ApiContext } from '../context.js';

const Healthy = Type.Object({ status: Type.String(), version: Type.String() });

export const healthRoutes: FastifyPluginAsyncTypebox<{ ctx: ApiContext; extraReadiness?: () => Promise<CheckResult[]> }> = async (
  app,
  { ctx, extraReadiness },
) => {
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
      return reply.status(503).header('retry-after', '5').send({ status: 'unavailable', error: `not ready: ${Object.keys(failing).join(', ')}`, checks });
    }
    return { status: 'ready', version: ctx.version, checks };
  });

  app.get('/api/metrics', async (_request, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });
};
