// Sign-up and log-in, shared by the JSON routes and the pages. Every password check counts toward the login
// limit (per account and per client IP): logins, and the password re-entered before a key export or a change.
import type { UserRow } from '../../database/queries/users.js';
import { metrics } from '../../shared/metrics.js';
import type { ApiContext } from '../context.js';
import { HttpError } from '../errors.js';
import { checkLogin, createSession, register } from './accounts.js';

/** The user when the pair is right; 429 while locked out, 401 on a wrong pair. */
export async function checkPasswordLimited(ctx: ApiContext, email: string, password: string, ip: string): Promise<UserRow> {
  const wait = await ctx.loginLimiter.retryAfter(email, ip);
  if (wait > 0) throw new HttpError(429, 'too many failed attempts; try again later', { 'retry-after': String(wait) });
  const user = await checkLogin(ctx, email, password);
  if (!user) {
    await ctx.loginLimiter.fail(email, ip);
    throw new HttpError(401, 'wrong email or password');
  }
  await ctx.loginLimiter.succeed(email, ip);
  return user;
}

/** A login: the checked user and a new session token (counted in the login metrics). */
export async function login(ctx: ApiContext, email: string, password: string, ip: string): Promise<{ user: UserRow; token: string }> {
  let user: UserRow;
  try {
    user = await checkPasswordLimited(ctx, email, password, ip);
  } catch (err) {
    if (err instanceof HttpError) metrics.loginFailures.inc({ reason: err.statusCode === 429 ? 'rate_limited' : 'bad_credentials' });
    throw err;
  }
  metrics.logins.inc();
  return { user, token: await createSession(ctx, user.id) };
}

/** A registration and its first session (counted in the registration metric). */
export async function signUp(
  ctx: ApiContext,
  input: { email: string; password: string; nsec?: string },
): Promise<{ userId: string; pubkey: string; token: string }> {
  const { userId, pubkey } = await register(ctx, input);
  metrics.registrations.inc();
  return { userId, pubkey, token: await createSession(ctx, userId) };
}
