// /admin/queues: Bull Board over the shard queues, behind HTTP basic auth with ADMIN_PASSWORD (any user
// name). Without ADMIN_PASSWORD the dashboard is off and says so. Browsers resend basic credentials on their
// own, so an unsafe request must also come from our own pages (Origin), not from another site. Wrong
// passwords count like failed logins (LoginLimiter, per client address only: one address guessing does not
// lock out the other operators), so the password cannot be guessed at speed: past the limit, 429.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { createShardBoard } from '../../dashboards/bull-board.js';
import type { ApiContext } from '../context.js';
import { isOwnOrigin } from '../plugins/web-security.js';
import { tooManyAttempts } from '../services/login.js';

export const ADMIN_QUEUES_PATH = '/admin/queues';
const REALM = 'Basic realm="Keyfarm operators", charset="UTF-8"';
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** The LoginLimiter account of the operators; no user's email can take this form (it has no @). */
const OPERATORS = '(operators)';
/** Bull Board's UI: its own scripts, inline styles; no third-party fonts, no framing. */
const BOARD_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; object-src 'none'";

const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/** The password of an `Authorization: Basic` header (the user name is ignored), or undefined. */
export function basicPassword(header: string | undefined): string | undefined {
  const match = header ? /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header) : null;
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? undefined : decoded.slice(colon + 1);
}

/** Constant time whatever the lengths: both sides are hashed first. */
export function passwordMatches(given: string | undefined, expected: string): boolean {
  return given !== undefined && timingSafeEqual(digest(given), digest(expected));
}

/** 429 with the wait; sent directly because Bull Board's error handler, not ours, answers errors thrown in its scope. */
function tooMany(reply: FastifyReply, seconds: number) {
  const err = tooManyAttempts('too many wrong admin passwords', seconds);
  return reply.status(429).headers(err.headers).send({ error: err.message });
}

export const adminRoutes: FastifyPluginAsync<{ ctx: ApiContext }> = async (app, { ctx }) => {
  const password = ctx.config.ADMIN_PASSWORD;
  if (!password) {
    const off = async (_request: FastifyRequest, reply: FastifyReply) =>
      reply.status(404).send({ error: 'the queue dashboard is off: set ADMIN_PASSWORD to turn it on' });
    app.all(ADMIN_QUEUES_PATH, off);
    app.all(`${ADMIN_QUEUES_PATH}/*`, off);
    return;
  }

  const board = createShardBoard({
    names: ctx.names,
    shardCount: ctx.config.SHARD_COUNT,
    connection: ctx.redis,
    basePath: ADMIN_QUEUES_PATH,
    readOnly: ctx.config.ADMIN_QUEUES_READ_ONLY,
    links: [
      { text: 'Prometheus metrics', url: '/api/metrics' },
      { text: 'Readiness', url: '/healthz/ready' },
    ],
  });
  app.addHook('onClose', async () => board.close());

  await app.register(async (admin) => {
    admin.addHook('onRequest', async (request, reply) => {
      const given = basicPassword(request.headers.authorization);
      const refuse = () =>
        reply.status(401).header('www-authenticate', REALM).send({ error: 'the admin password is required' });
      // A browser first asks without credentials: that is not a guess.
      if (given === undefined) return refuse();
      // The password is compared first: it is cheap (no hash), and a browser sends many requests at once
      // with it. A wrong one is counted (or refused) in one step; while this address must wait, even the
      // right one gets 429, so the answers past the limit say nothing about the guesses.
      const scope = { perAccount: false };
      if (!passwordMatches(given, password)) {
        const attempt = await ctx.loginLimiter.attempt(OPERATORS, request.ip, scope);
        return attempt.retryAfterSeconds > 0 ? tooMany(reply, attempt.retryAfterSeconds) : refuse();
      }
      const wait = await ctx.loginLimiter.retryAfter(OPERATORS, request.ip, scope);
      if (wait > 0) return tooMany(reply, wait);
      const origin = request.headers.origin;
      if (!SAFE_METHODS.has(request.method) && origin !== undefined && !isOwnOrigin(ctx.config, request, origin)) {
        return reply.status(403).send({ error: 'cross-site request refused' });
      }
      reply.header('content-security-policy', BOARD_CSP).header('cache-control', 'no-store');
    });
    await admin.register(board.plugin, { prefix: ADMIN_QUEUES_PATH });
  });
};
