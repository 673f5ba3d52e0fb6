// Sign-up and log-in, shared by the JSON routes and the pages. Every password check counts toward the login
// limits (LoginLimiter): logins, and the password re-entered before a key export or a change.
import type { UserRow } from '../../database/queries/users.js';
import { metrics } from '../../shared/metrics.js';
import { waitText } from '../../shared/net/client-address.js';
import type { ApiContext } from '../context.js';
import { HttpError } from '../errors.js';
import { checkLogin, createSession, register } from './accounts.js';
import { sendVerification } from './email-verification.js';

/** A 429 that says how long to wait, in its message and its Retry-After header. */
export function tooManyAttempts(what: string, retryAfterSeconds: number): HttpError {
  return new HttpError(429, `${what}; try again in ${waitText(retryAfterSeconds)}`, {
    'retry-after': String(retryAfterSeconds),
  });
}

/** The user when the pair is right; 429 while this client must wait, 401 on a wrong pair. */
export async function checkPasswordLimited(
  ctx: ApiContext,
  email: string,
  password: string,
  ip: string,
): Promise<UserRow> {
  const attempt = await ctx.loginLimiter.attempt(email, ip, { perAccount: true });
  if (attempt.retryAfterSeconds > 0) throw tooManyAttempts('too many failed attempts', attempt.retryAfterSeconds);
  let user: UserRow | undefined;
  try {
    user = await checkLogin(ctx, email, password);
  } catch (err) {
    await attempt.release().catch(() => undefined);
    throw err;
  }
  if (!user) throw new HttpError(401, 'wrong email or password');
  await attempt.succeed();
  return user;
}

/** A login: the checked user and a new session token (counted in the login metrics). */
export async function login(
  ctx: ApiContext,
  email: string,
  password: string,
  ip: string,
): Promise<{ user: UserRow; token: string }> {
  let user: UserRow;
  try {
    user = await checkPasswordLimited(ctx, email, password, ip);
  } catch (err) {
    if (err instanceof HttpError)
      metrics.loginFailures.inc({ reason: err.statusCode === 429 ? 'rate_limited' : 'bad_credentials' });
    throw err;
  }
  metrics.logins.inc();
  return { user, token: await createSession(ctx, user.id) };
}

/** A registration, its confirmation mail and its first session (counted in the registration metric). */
export async function signUp(
  ctx: ApiContext,
  input: { email: string; password: string; nsec?: string },
): Promise<{ userId: string; pubkey: string; token: string }> {
  const { userId, pubkey } = await register(ctx, input);
  metrics.registrations.inc();
  await sendVerification(ctx, { id: userId, email: input.email });
  return { userId, pubkey, token: await createSession(ctx, userId) };
}
