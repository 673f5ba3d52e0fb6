// Signed-in pages: the session's user, or a redirect to the login page that comes back afterwards.
import type { FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';
import { findUserById, type UserRow } from '../../database/queries/users.js';
import type { ApiContext } from '../context.js';
import { sessionUser } from '../plugins/session.js';
import { csrfToken } from '../plugins/web-security.js';
import type { SignedIn } from './layout.js';

declare module 'fastify' {
  interface FastifyRequest {
    user?: UserRow;
  }
}

/** A same-site path to return to after logging in; anything else becomes the account page. */
export function safeNext(next: string | undefined): string {
  if (!next || next.length > 4096 || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/\\')) return '/account';
  return next;
}

export function loginUrl(next: string): string {
  return `/login?next=${encodeURIComponent(next)}`;
}

export function requirePageUser(ctx: ApiContext): preHandlerAsyncHookHandler {
  return async (request, reply) => {
    const userId = await sessionUser(ctx, request);
    const user = userId ? await findUserById(ctx.db, userId) : undefined;
    if (!user) return reply.redirect(loginUrl(request.method === 'GET' ? request.url : '/account'), 303);
    request.user = user;
  };
}

/** The navigation's view of the signed-in user, with this response's form token. */
export function signedIn(request: FastifyRequest, reply: FastifyReply): SignedIn {
  return { email: request.user!.email, csrf: csrfToken(reply) };
}
