// What a browser needs from the api: security headers with a strict CSP, CORS (open, without cookies, for the
// routes apps call with a bearer token; limited to ALLOWED_ORIGINS for the routes that take the session
// cookie), and CSRF tokens on every request a browser could forge: an unsafe method sent without a bearer
// token and without a JSON body (a cross-site page can send JSON only after a CORS preflight we refuse).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import csrf from '@fastify/csrf-protection';
import helmet from 'helmet';
import type { Config } from '../../shared/config.js';
import { isWellFormedOrigin } from '../safe-origin.js';
import { bearerToken } from './session.js';

/** Routes that never read the session cookie: apps call them cross-origin with a bearer token or an OAuth code (or read the API description). */
const OPEN_CORS_PATHS = new Set([
  '/api/oauth/token',
  '/api/nostr',
  '/api/policies',
  '/api/openapi.json',
  '/health',
  '/.well-known/nostr.json',
]);
/** Unsafe routes that authenticate without the session cookie (the admin routes check the Origin instead). */
const CSRF_EXEMPT_PATHS = new Set(['/api/oauth/token', '/api/nostr']);
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
const CORS_HEADERS = ['authorization', 'content-type', 'x-trace-id', 'prefer'];
const EXPOSED_HEADERS = ['x-trace-id', 'retry-after'];

const isHttps = (config: Config) => config.PUBLIC_URL.startsWith('https://');
const pathOf = (request: FastifyRequest) => {
  const query = request.url.indexOf('?');
  return query < 0 ? request.url : request.url.slice(0, query);
};

/**
 * The pages' policy: our own scripts, styles and forms only; no framing. `formTargets` adds form-action
 * origins; one that is not a well-formed origin is left out, so it can never add a directive of its own.
 */
export function pageCsp(config: Config, formTargets: string[] = []): string {
  const targets = formTargets.filter(isWellFormedOrigin);
  const directives = [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    // A form's redirect is checked against form-action too: the consent form ends at the app's redirect_uri.
    `form-action 'self'${targets.map((o) => ` ${o}`).join('')}`,
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "object-src 'none'",
  ];
  if (isHttps(config)) directives.push('upgrade-insecure-requests');
  return directives.join('; ');
}

/** The origin a browser on our own pages sends: as this request reached us, or PUBLIC_URL's. */
export function isOwnOrigin(config: Config, request: FastifyRequest, origin: string): boolean {
  return origin === `${request.protocol}://${request.host}` || origin === new URL(config.PUBLIC_URL).origin;
}

function needsCsrfToken(request: FastifyRequest): boolean {
  if (SAFE_METHODS.has(request.method)) return false;
  const path = pathOf(request);
  if (CSRF_EXEMPT_PATHS.has(path) || path.startsWith('/admin/')) return false;
  if (bearerToken(request)) return false;
  return !(request.headers['content-type'] ?? '').toLowerCase().startsWith('application/json');
}

/** The token a form of this response must carry (its secret goes in an HttpOnly cookie on first use). */
export function csrfToken(reply: FastifyReply): string {
  return reply.generateCsrf();
}

/**
 * Helmet's security headers for these options, computed once: its middleware sets the same static headers
 * on every response, and building and running it per request cost about 3.5% of the event loop under
 * HTTP RPC load (docs/BENCHMARKS.md).
 */
export function securityHeaders(options: Parameters<typeof helmet>[0]): Record<string, string> {
  const headers: Record<string, string> = {};
  const res = {
    setHeader(name: string, value: unknown) {
      headers[name.toLowerCase()] = String(value);
    },
    removeHeader(name: string) {
      delete headers[name.toLowerCase()];
    },
  };
  helmet(options)({} as never, res as never, (err?: unknown) => {
    if (err) throw err;
  });
  return headers;
}

export async function installWebSecurity(app: FastifyInstance, config: Config): Promise<void> {
  const https = isHttps(config);
  // Built once: these run on every request, /api/nostr's included. The CSP is set here rather than by
  // helmet so a route can widen form-action.
  const headers = {
    ...securityHeaders({
      contentSecurityPolicy: false,
      hsts: https ? { maxAge: 180 * 24 * 3600, includeSubDomains: false } : false,
      frameguard: { action: 'deny' },
    }),
    'content-security-policy': pageCsp(config),
  };
  // CORS, decided by path: open (any origin, no cookies) for the routes apps call with a bearer token;
  // the session routes under /api/ only for ALLOWED_ORIGINS, with credentials; nothing for the rest. The
  // header sets are built once (@fastify/cors rebuilt its options on every request).
  const credentialed = config.ALLOWED_ORIGINS;
  const expose = EXPOSED_HEADERS.join(', ');
  const preflightOf = (allowed: string[]) => ({
    'access-control-allow-methods': 'GET, POST',
    'access-control-allow-headers': allowed.join(', '),
    'access-control-max-age': '600',
  });
  const every = { ...headers, vary: 'Origin' };
  // The open routes' whole set in one object: one pass over it per request.
  const open = { ...every, 'access-control-allow-origin': '*', 'access-control-expose-headers': expose };
  const openPreflight = preflightOf(CORS_HEADERS);
  const cookiePreflight = preflightOf([...CORS_HEADERS, 'x-csrf-token']);
  app.addHook('onRequest', (request, reply, done) => {
    const path = pathOf(request);
    const origin = request.headers.origin;
    let preflight: Record<string, string>;
    if (OPEN_CORS_PATHS.has(path)) {
      reply.headers(open);
      preflight = openPreflight;
    } else if (origin !== undefined && path.startsWith('/api/') && credentialed.includes(origin)) {
      reply.headers(every);
      reply.headers({
        'access-control-allow-origin': origin,
        'access-control-allow-credentials': 'true',
        'access-control-expose-headers': expose,
      });
      preflight = cookiePreflight;
    } else {
      reply.headers(every);
      return done();
    }
    if (request.method !== 'OPTIONS') return done();
    if (!origin || !request.headers['access-control-request-method']) {
      reply.code(400).type('text/plain').send('Invalid Preflight Request');
      return;
    }
    // Content-Length 0: some browsers wait for a body after a 204 without it.
    reply.headers(preflight).code(204).header('content-length', '0').send();
  });
  // A preflight is answered by the hook above; any other OPTIONS request finds nothing.
  app.options('*', { schema: { hide: true } }, (_request, reply) => reply.callNotFound());

  await app.register(csrf, {
    cookieKey: https ? '__Host-keyfarm_csrf' : 'keyfarm_csrf',
    cookieOpts: { path: '/', httpOnly: true, sameSite: 'strict', secure: https },
  });
  app.addHook('preValidation', (request, reply, done) => {
    if (!needsCsrfToken(request)) return done();
    app.csrfProtection(request, reply, done);
  });
}
