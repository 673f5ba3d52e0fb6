// A small HTTP client for the Keyfarm API as an app and a user would drive it.
import { createHash, randomBytes } from 'node:crypto';
import { recordSecret } from './logs.js';

export interface Res<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

export async function call<T = any>(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  token?: string,
  headers: Record<string, string> = {},
): Promise<Res<T>> {
  const res = await fetch(base + path, {
    method,
    headers: {
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...headers,
    },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    redirect: 'manual',
  }).catch((err: Error & { cause?: { code?: string; message?: string } }) => {
    // undici says only "fetch failed"; the cause (refused, reset, connect timeout) is what helps.
    throw new Error(`${method} ${path}: ${err.message} (${err.cause?.code ?? err.cause?.message ?? 'no cause'})`, {
      cause: err.cause ?? err,
    });
  });
  const text = await res.text();
  let parsed: any = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

let userSeq = 0;

/** A registered account: its email, password, pubkey and session token. */
export type TestUser = Awaited<ReturnType<typeof registerUser>>;

export async function registerUser(base: string, extra: { nsec?: string } = {}) {
  const email = `user${process.pid}-${Date.now()}-${userSeq++}@example.com`;
  const password = `pw-${randomBytes(12).toString('hex')}`;
  recordSecret(password);
  if (extra.nsec) recordSecret(extra.nsec);
  const res = await call(base, 'POST', '/api/auth/register', { email, password, ...extra });
  if (res.status !== 201) throw new Error(`register failed: ${res.status} ${JSON.stringify(res.body)}`);
  recordSecret(res.body.token);
  return { email, password, pubkey: res.body.pubkey as string, session: res.body.token as string };
}

export function pkcePair() {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  return { verifier, challenge };
}

/** The JSON OAuth path an app uses: approve with the session, then exchange the code with PKCE. */
export async function authorizeApp(base: string, session: string, policy = 'full', clientId = 'test-app') {
  const { verifier, challenge } = pkcePair();
  const redirectUri = 'http://127.0.0.1:9/callback';
  const auth = await call(
    base,
    'POST',
    '/api/oauth/authorize',
    {
      client_id: clientId,
      redirect_uri: redirectUri,
      scope: `policy:${policy}`,
      approved: true,
      code_challenge: challenge,
      code_challenge_method: 'S256',
      state: 'st',
    },
    session,
  );
  if (auth.status !== 200) throw new Error(`authorize failed: ${auth.status} ${JSON.stringify(auth.body)}`);
  recordSecret(auth.body.code);
  const token = await call(base, 'POST', '/api/oauth/token', {
    grant_type: 'authorization_code',
    code: auth.body.code,
    client_id: clientId,
    redirect_uri: redirectUri,
    code_verifier: verifier,
  });
  if (token.status !== 200) throw new Error(`token failed: ${token.status} ${JSON.stringify(token.body)}`);
  recordSecret(token.body.access_token);
  recordSecret(token.body.refresh_token);
  return { ...token.body, code: auth.body.code, verifier, redirectUri, clientId } as {
    access_token: string;
    refresh_token: string;
    bunker_url: string;
    policy: { slug: string };
    code: string;
    verifier: string;
    redirectUri: string;
    clientId: string;
    scope: string;
    expires_in: number;
  };
}

export function rpc(
  base: string,
  token: string,
  method: string,
  params: unknown[] = [],
  headers: Record<string, string> = {},
) {
  return call(base, 'POST', '/api/nostr', { method, params }, token, headers);
}
