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

/** A path on this site, and nothing a browser could read as another host ("//host", "/\\host", "/\t/host"). */
const LOCAL_PATH = /^\/(?![/\\])[^\s\\?#\x00-\x1f\x7f]*(?:[?#][^\s\x00-\x1f\x7f]*)?$/;

/** A same-site path to return to after logging in; anything else becomes the account page. */
export function safeNext(next: string | undefined): string {
  return next && next.length <= 4096 && LOCAL_PATH.test(next) ? next : '/account';
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
