// Session credentials: `Authorization: Bearer <session token>` or the session cookie, on every session route.
import type { FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';
import { findSessionUser } from '../../database/queries/sessions.js';
import type { ApiContext } from '../context.js';
import { unauthorized } from '../errors.js';
import { SESSION_TTL_MS } from '../services/accounts.js';
import { hashToken } from '../services/tokens.js';

export const SESSION_COOKIE = 'keyfarm_session';

declare module 'fastify' {
  interface FastifyRequest {
    userId?: string;
    sessionToken?: string;
  }
}

export function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (!header) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

export function sessionToken(request: FastifyRequest): string | undefined {
  return bearerToken(request) ?? request.cookies?.[SESSION_COOKIE];
}

export function setSessionCookie(ctx: ApiContext, reply: FastifyReply, token: string): void {
  reply.setCookie(SESSION_COOKIE, token, {
    path: '/',
    httpOnly: true,
    sameSite: 'lax',
    secure: ctx.config.PUBLIC_URL.startsWith('https://'),
    maxAge: Math.floor(SESSION_TTL_MS / 1000),
  });
}

export function clearSessionCookie(reply: FastifyReply): void {
  reply.clearCookie(SESSION_COOKIE, { path: '/' });
}

/** Resolves the session's user, or undefined; never throws for a bad token. */
export async function sessionUser(ctx: ApiContext, request: FastifyRequest): Promise<string | undefined> {
  const token = sessionToken(request);
  if (!token || token.length > 512) return undefined;
  const userId = await findSessionUser(ctx.db, hashToken(token));
  if (userId) {
    request.userId = userId;
    request.sessionToken = token;
  }
  return userId;
}

export function requireSession(ctx: ApiContext): preHandlerAsyncHookHandler {
  return async (request) => {
    if (!(await sessionUser(ctx, request))) throw unauthorized('a valid session is required');
  };
}
