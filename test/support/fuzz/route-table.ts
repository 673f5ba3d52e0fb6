// The api's routes as Fastify itself registers them: a subscriber to Fastify's 'fastify.initialization'
// channel adds an onRoute hook to each new instance before any plugin registers a route, so a route added
// tomorrow is fuzzed without editing the suite.
import { channel } from 'node:diagnostics_channel';
import type { FastifyInstance, FastifySchema, RouteOptions } from 'fastify';

export interface FuzzRoute {
  method: string;
  url: string;
  schema: FastifySchema;
  /** The source of the handler and its preHandlers, to see which parts of the request it reads. */
  source: string;
}

export interface RouteWatch {
  /** The instance that registered `marker` (the api), once it has. */
  app(marker: string): FastifyInstance;
  routes(app: FastifyInstance): FuzzRoute[];
  stop(): void;
}

const FASTIFY_INIT = channel('fastify.initialization');

function sourceOf(options: RouteOptions): string {
  const hooks = [options.handler, options.preHandler, options.preValidation, options.onRequest].flat().filter(Boolean);
  return hooks.map((fn) => String(fn)).join('\n');
}

/** Starts collecting: call before the app is built. */
export function watchRoutes(): RouteWatch {
  const seen = new Map<FastifyInstance, FuzzRoute[]>();
  const onInit = (message: unknown) => {
    const fastify = (message as { fastify: FastifyInstance }).fastify;
    const routes: FuzzRoute[] = [];
    seen.set(fastify, routes);
    fastify.addHook('onRoute', (options) => {
      for (const method of [options.method].flat()) {
        if (method === 'HEAD') continue; // Fastify's own copy of a GET
        routes.push({ method, url: options.url, schema: options.schema ?? {}, source: sourceOf(options) });
      }
    });
  };
  FASTIFY_INIT.subscribe(onInit);
  return {
    app(marker) {
      for (const [app, routes] of seen) if (routes.some((r) => r.url === marker)) return app;
      throw new Error(`no Fastify instance registered ${marker}`);
    },
    routes(app) {
      return seen.get(app) ?? [];
    },
    stop: () => FASTIFY_INIT.unsubscribe(onInit),
  };
}

/** Bull Board's own routes: a library's, reached only past the admin password (api/routes/admin.ts). */
export const THIRD_PARTY_PREFIX = '/admin/queues';

const READS = {
  body: /\b(?:request|req)\.body\b/,
  querystring: /\b(?:request|req)\.query\b/,
  params: /\b(?:request|req)\.params\b/,
} as const;
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * Routes of ours that take input without a schema for it: a body route without a body schema (unless it
 * reads no body), a query or path parameter read without its schema.
 */
export function routesWithoutSchema(routes: FuzzRoute[]): string[] {
  const missing: string[] = [];
  for (const route of routes) {
    if (route.url.startsWith(THIRD_PARTY_PREFIX) || route.method === 'OPTIONS') continue;
    const name = `${route.method} ${route.url}`;
    if (BODY_METHODS.has(route.method) && !route.schema.body && READS.body.test(route.source))
      missing.push(`${name}: body`);
    if (!route.schema.querystring && READS.querystring.test(route.source)) missing.push(`${name}: querystring`);
    if (route.url.includes(':') && !route.schema.params) missing.push(`${name}: params`);
    if (!route.schema.params && READS.params.test(route.source)) missing.push(`${name}: params`);
  }
  return missing;
}
