// Request limits: the table of limited routes and their settings, applied by route URL when routes are
// added (route files need not know). Counted in Redis (one Lua step per request) so every api replica
// shares the count; keyed by the hashed client address, or by user on session routes. Clients in
// RATE_LIMIT_ALLOWLIST skip these limits (not the login-failure limits: services/login-limiter.ts).
import { readFileSync } from 'node:fs';
import rateLimit, { type RateLimitOptions } from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { luaCommand, type RedisClient } from '../../shared/redis.js';
import type { Config } from '../../shared/config.js';
import { clientKey, parseRate, parseSubnetList, subnetMatcher, waitText } from '../../shared/net/client-address.js';
import { HttpError } from '../errors.js';

type RateSetting =
  | 'RATE_LIMIT_REGISTER'
  | 'RATE_LIMIT_LOGIN'
  | 'RATE_LIMIT_OAUTH_TOKEN'
  | 'RATE_LIMIT_OAUTH_POLL'
  | 'RATE_LIMIT_BUNKER_CREATE'
  | 'RATE_LIMIT_NOSTRCONNECT'
  | 'RATE_LIMIT_EMAIL';

interface RouteLimit {
  setting: RateSetting;
  /** client: per client address, before the body is read; user: per signed-in user, after the session check. */
  per: 'client' | 'user';
}

/** "METHOD url" -> its limit. The JSON route and its page form share one count. */
export const LIMITED_ROUTES: Readonly<Record<string, RouteLimit>> = {
  'POST /api/auth/register': { setting: 'RATE_LIMIT_REGISTER', per: 'client' },
  'POST /register': { setting: 'RATE_LIMIT_REGISTER', per: 'client' },
  'POST /api/oauth/register': { setting: 'RATE_LIMIT_REGISTER', per: 'client' },
  'GET /api/oauth/poll': { setting: 'RATE_LIMIT_OAUTH_POLL', per: 'client' },
  'POST /api/auth/login': { setting: 'RATE_LIMIT_LOGIN', per: 'client' },
  'POST /login': { setting: 'RATE_LIMIT_LOGIN', per: 'client' },
  'POST /api/oauth/token': { setting: 'RATE_LIMIT_OAUTH_TOKEN', per: 'client' },
  'POST /api/user/bunker/create': { setting: 'RATE_LIMIT_BUNKER_CREATE', per: 'user' },
  'POST /account/bunker': { setting: 'RATE_LIMIT_BUNKER_CREATE', per: 'user' },
  'POST /api/user/nostrconnect': { setting: 'RATE_LIMIT_NOSTRCONNECT', per: 'user' },
  'POST /account/nostrconnect': { setting: 'RATE_LIMIT_NOSTRCONNECT', per: 'user' },
  // Requests that send mail; each address mailed is limited as well (services/email-tokens.ts).
  'POST /api/auth/forgot-password': { setting: 'RATE_LIMIT_EMAIL', per: 'client' },
  'POST /forgot-password': { setting: 'RATE_LIMIT_EMAIL', per: 'client' },
  'POST /api/auth/resend-verification': { setting: 'RATE_LIMIT_EMAIL', per: 'client' },
  'POST /account/verify-email': { setting: 'RATE_LIMIT_EMAIL', per: 'user' },
  'POST /api/user/change-email': { setting: 'RATE_LIMIT_EMAIL', per: 'user' },
  'POST /account/email': { setting: 'RATE_LIMIT_EMAIL', per: 'user' },
  'POST /api/teams/:id/invites': { setting: 'RATE_LIMIT_EMAIL', per: 'user' },
  'POST /teams/:id/invites': { setting: 'RATE_LIMIT_EMAIL', per: 'user' },
  'POST /api/teams/:id/keys/:pubkey/authorizations': { setting: 'RATE_LIMIT_BUNKER_CREATE', per: 'user' },
  'POST /teams/:id/authorizations': { setting: 'RATE_LIMIT_BUNKER_CREATE', per: 'user' },
};

const LUA = readFileSync(new URL('./rate-limits.lua', import.meta.url), 'utf8');
const COMMAND = 'keyfarmRequestLimit';
type CountCommand = (key: string, windowMs: number) => Promise<[number, number]>;
type StoreCallback = (err: Error | null, result?: { current: number; ttl: number }) => void;

/** Counts one event under `key` in a fixed window (one Lua step); returns the count in this window. */
export async function countInWindow(redis: RedisClient, key: string, windowMs: number): Promise<number> {
  const [current] = await luaCommand<CountCommand>(redis, COMMAND, 1, LUA)(key, windowMs);
  return current;
}

/** @fastify/rate-limit's store interface over our Lua counter; one store for every route (keys carry the group). */
function redisStore(redis: RedisClient, prefix: string) {
  const count = luaCommand<CountCommand>(redis, COMMAND, 1, LUA);
  return class RequestLimitStore {
    incr(key: string, done: StoreCallback, timeWindow: number): void {
      count(`${prefix}${key}`, timeWindow).then(
        ([current, ttl]) => done(null, { current, ttl }),
        (err: Error) => done(err),
      );
    }

    child(): RequestLimitStore {
      return this;
    }
  };
}

function userOf(request: FastifyRequest): string | undefined {
  return (
    (request as FastifyRequest & { userId?: string }).userId ??
    (request as FastifyRequest & { user?: { id: string } }).user?.id
  );
}

function routeLimit(config: Config, limit: RouteLimit): RateLimitOptions | undefined {
  const value = config[limit.setting];
  if (value === 'off') return undefined;
  const { max, windowMs } = parseRate(value);
  const group = limit.setting.slice('RATE_LIMIT_'.length).toLowerCase();
  return {
    max,
    timeWindow: windowMs,
    hook: limit.per === 'user' ? 'preHandler' : 'onRequest',
    keyGenerator: (request) => {
      const user = limit.per === 'user' ? userOf(request) : undefined;
      return user ? `${group}:u:${user}` : `${group}:c:${clientKey(request.ip)}`;
    },
  };
}

/** Call before any route is added: the onRoute hook must see every limited route. */
export async function installRateLimits(app: FastifyInstance, config: Config, redis: RedisClient): Promise<void> {
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const limit = methods.map((m) => LIMITED_ROUTES[`${m} ${route.url}`]).find(Boolean);
    const options = limit && routeLimit(config, limit);
    if (options) route.config = { ...route.config, rateLimit: options };
  });
  const allowed = subnetMatcher(parseSubnetList(config.RATE_LIMIT_ALLOWLIST));
  await app.register(rateLimit, {
    global: false,
    store: redisStore(redis, `${config.KEY_PREFIX}:ratelimit:`),
    allowList: (request) => allowed(request.ip),
    addHeadersOnExceeding: { 'x-ratelimit-limit': false, 'x-ratelimit-remaining': false, 'x-ratelimit-reset': false },
    errorResponseBuilder: (_request, context) => {
      const seconds = Math.max(1, Math.ceil(context.ttl / 1000));
      return new HttpError(429, `too many requests; try again in ${waitText(seconds)}`, {
        'retry-after': String(seconds),
      });
    },
  });
}
