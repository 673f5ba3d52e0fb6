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
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what the path must not contain.
const LOCAL_PATH = /^\/(?![/\\])[^\s\\?#\x00-\x1f\x7f]*(?:[?#][^\s\x00-\x1f\x7f]*)?$/;

const MAX_NEXT = 4096;
const BASE = 'http://keyfarm.invalid';
/** What a Location header may hold: printable ASCII, nothing else. */
const HEADER_SAFE = /^[\x21-\x7e]+$/;

/**
 * A same-site path to return to after logging in, percent-encoded as the URL parser writes it (so it is
 * always a valid Location header); anything else becomes the account page.
 */
export function safeNext(next: string | undefined): string {
  if (!next || next.length > MAX_NEXT || !LOCAL_PATH.test(next)) return '/account';
  let url: URL;
  try {
    url = new URL(next, BASE);
  } catch {
    return '/account';
  }
  if (url.origin !== BASE) return '/account';
  // Checked again once normalised: "/.//host" comes out as "//host".
  const path = url.pathname + url.search + url.hash;
  return path.length <= MAX_NEXT && HEADER_SAFE.test(path) && LOCAL_PATH.test(path) ? path : '/account';
}

export function loginUrl(next: string): string {
  return `/login?next=${encodeURIComponent(safeNext(next))}`;
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
