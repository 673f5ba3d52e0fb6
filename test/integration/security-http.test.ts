// Attacks on the HTTP doors, each performed against a real farm (real PostgreSQL and Redis) and shown to do
// no harm: a code exchanged by another client or for another redirect_uri, expired grants, tokens and
// sessions (rows aged in the database), sessions outliving a password change, password spraying from one
// address, a weak export passphrase, a session token used as an RPC token and the reverse, and a revoke
// while the revocation broadcast, or Redis itself, is down.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { nip19 } from 'nostr-tools';
import { decrypt as nip49Decrypt } from 'nostr-tools/nip49';
import { startApi, type RunningApi } from '../../api/index.js';
import type { ApiContext } from '../../api/context.js';
import { HttpError } from '../../api/errors.js';
import { exportUserKey } from '../../api/services/key-export.js';
import { hashToken } from '../../api/services/tokens.js';
import { openKeyManager, VERSION } from '../../bin/runtime.js';
import type { KeyManager } from '../../shared/custody/key-manager.js';
import { authorizeApp, call, pkcePair, registerUser, rpc } from '../support/client.js';
import { redisUrl } from '../support/env.js';
import { startTestFarm, type TestFarm } from '../support/farm.js';
import { recordSecret, testLogger } from '../support/logs.js';
import { confirmEmail } from '../support/mail.js';
import { startRedisProxy, type CuttableProxy } from '../support/tcp-proxy.js';
import { waitFor } from './farm-fixtures.js';
import { loadPayloadSealer } from '../../shared/farm/payload-key.js';
import { KeyStore } from '../../shared/custody/key-store.js';
import { createRedis } from '../../shared/redis.js';
import { LoginLimiter } from '../../api/services/login-limiter.js';

const PUBLIC_URL = 'https://keyfarm.example';
const CSRF_COOKIE = '__Host-keyfarm_csrf';
const REDIRECT_URI = 'http://127.0.0.1:9/callback';

const cookiePair = (setCookie: string | null, name: string) => {
  const match = new RegExp(`(?:^|,\\s*)(${name.replace(/[-$]/g, '\\$&')}=[^;]+)`).exec(setCookie ?? '');
  return match?.[1];
};
const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();

describe('security of the HTTP doors: attacks that must do no harm', () => {
  let farm: TestFarm;
  let base: string;
  /** Redis as the farm (api A and the workers) sees it, and as api B sees it. */
  let proxyA: CuttableProxy;
  let proxyB: CuttableProxy;
  let apiB: RunningApi;
  let keyManagerB: KeyManager;

  before(async () => {
    proxyA = await startRedisProxy(redisUrl());
    proxyB = await startRedisProxy(redisUrl());
    // The spraying test names its client in X-Forwarded-For: this farm trusts the loopback proxy (the test).
    farm = await startTestFarm('security-http', {
      PUBLIC_URL,
      REDIS_URL: proxyA.urlFor(redisUrl()),
      TRUST_PROXY: '127.0.0.1',
    });
    base = farm.url;
    // A second api instance over the same database and Redis (its own link to Redis), as in a deployment.
    keyManagerB = await openKeyManager(farm.rt);
    apiB = await startApi({
      config: farm.config,
      logger: testLogger('security-http-api-b'),
      db: farm.rt.db,
      redisUrl: proxyB.urlFor(redisUrl()),
      keyManager: keyManagerB,
      payloadSealer: await loadPayloadSealer(farm.rt.db, keyManagerB),
      version: VERSION,
    });
  });

  after(async () => {
    proxyA?.restore();
    proxyB?.restore();
    await apiB?.close();
    await keyManagerB?.close();
    await farm?.stop();
    await proxyA?.stop();
    await proxyB?.stop();
  });

  /** Runs SQL on the farm's database (to age rows as time would). */
  const sql = (text: string, params: unknown[]) => farm.rt.db.query(text, params);

  /** An OAuth code issued to `client_id` for `redirect_uri`, and its PKCE verifier. */
  async function codeFor(session: string, clientId: string, redirectUri = REDIRECT_URI) {
    const { verifier, challenge } = pkcePair();
    const res = await call(
      base,
      'POST',
      '/api/oauth/authorize',
      {
        client_id: clientId,
        redirect_uri: redirectUri,
        scope: 'policy:full',
        approved: true,
        code_challenge: challenge,
        code_challenge_method: 'S256',
      },
      session,
    );
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return { code: recordSecret(res.body.code as string), verifier };
  }

  async function authorizationsOf(
    session: string,
  ): Promise<{ authorization_id: string; application_name: string; revoked_at: string | null }[]> {
    const res = await call(base, 'GET', '/api/user/sessions', undefined, session);
    assert.equal(res.status, 200);
    return res.body;
  }

  /** A signed-in browser (session cookie + CSRF cookie) and the form token of `path`. */
  async function browser(session: string, path: string) {
    const cookie = `keyfarm_session=${session}`;
    const res = await fetch(base + path, { headers: { cookie }, redirect: 'manual' });
    const html = await res.text();
    const csrf = cookiePair(res.headers.get('set-cookie'), CSRF_COOKIE);
    const token = /name="_csrf" value="([^"]+)"/.exec(html)?.[1];
    assert.ok(csrf && token, `a form token on ${path}`);
    const post = (fields: Record<string, string>) =>
      fetch(base + path, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: `${cookie}; ${csrf}` },
        body: form({ ...fields, _csrf: token }),
        redirect: 'manual',
      });
    return { post };
  }

  describe('OAuth code binding', () => {
    it('refuses a code exchanged under another client_id, and creates no grant', async () => {
      const user = await registerUser(base);
      const { code, verifier } = await codeFor(user.session, 'app-one');
      const stolen = await call(base, 'POST', '/api/oauth/token', {
        grant_type: 'authorization_code',
        code,
        client_id: 'app-two',
        redirect_uri: REDIRECT_URI,
        code_verifier: verifier,
      });
      assert.equal(stolen.status, 400, JSON.stringify(stolen.body));
      assert.equal(stolen.body.error, 'invalid_grant');
      assert.equal(stolen.body.error_description, 'client_id or redirect_uri does not match the code');
      assert.equal(stolen.body.access_token, undefined);
      assert.deepEqual(await authorizationsOf(user.session), [], 'no authorization was created');
    });

    it('refuses a code exchanged for another redirect_uri, and creates no grant', async () => {
      const user = await registerUser(base);
      const { code, verifier } = await codeFor(user.session, 'app-one');
      const stolen = await call(base, 'POST', '/api/oauth/token', {
        grant_type: 'authorization_code',
        code,
        client_id: 'app-one',
        redirect_uri: 'http://127.0.0.1:9/elsewhere',
        code_verifier: verifier,
      });
      assert.equal(stolen.status, 400, JSON.stringify(stolen.body));
      assert.equal(stolen.body.error, 'invalid_grant');
      assert.deepEqual(await authorizationsOf(user.session), [], 'no authorization was created');
      // The same flow with the client's own values is honoured (the refusal above is the binding, not the flow).
      const own = await codeFor(user.session, 'app-one');
      const exchanged = await call(base, 'POST', '/api/oauth/token', {
        grant_type: 'authorization_code',
        code: own.code,
        client_id: 'app-one',
        redirect_uri: REDIRECT_URI,
        code_verifier: own.verifier,
      });
      assert.equal(exchanged.status, 200, JSON.stringify(exchanged.body));
      recordSecret(exchanged.body.access_token);
      recordSecret(exchanged.body.refresh_token);
    });

    it('refuses bad scope and PKCE input at authorize, and a bad verifier or refresh token with invalid_grant, never a 500', async () => {
      const user = await registerUser(base);
      const authorize = (extra: Record<string, unknown>) =>
        call(
          base,
          'POST',
          '/api/oauth/authorize',
          {
            client_id: 'app-one',
            redirect_uri: REDIRECT_URI,
            scope: 'policy:full',
            approved: true,
            ...extra,
          },
          user.session,
        );
      // The error_description tells the app's developer which parameter is wrong (RFC 6749 5.2).
      const refusals: [Record<string, unknown>, string, string][] = [
        [{ scope: 'policy:no-such-policy' }, 'invalid_scope', 'unknown policy: no-such-policy'],
        [
          { code_challenge: pkcePair().challenge, code_challenge_method: 'plain' },
          'invalid_request',
          'code_challenge_method must be S256',
        ],
        [{ code_challenge: 'short' }, 'invalid_request', 'code_challenge must be a base64url SHA-256'],
        [
          { code_challenge: `${pkcePair().challenge}x` },
          'invalid_request',
          'code_challenge must be a base64url SHA-256',
        ],
        [
          { code_challenge: `!${pkcePair().challenge.slice(1)}` },
          'invalid_request',
          'code_challenge must be a base64url SHA-256',
        ],
      ];
      for (const [extra, error, description] of refusals) {
        const res = await authorize(extra);
        assert.equal(res.status, 400, `${JSON.stringify(extra)}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body.error, error, JSON.stringify(extra));
        assert.equal(res.body.error_description, description, JSON.stringify(extra));
        assert.equal(res.body.code, undefined);
      }
      // A challenge without a method is S256.
      const defaulted = await authorize({ code_challenge: pkcePair().challenge });
      assert.equal(defaulted.status, 200, JSON.stringify(defaulted.body));
      recordSecret(defaulted.body.code);

      const exchange = async (extra: Record<string, unknown>) => {
        const { code } = await codeFor(user.session, 'app-one');
        return call(base, 'POST', '/api/oauth/token', {
          grant_type: 'authorization_code',
          code,
          client_id: 'app-one',
          redirect_uri: REDIRECT_URI,
          ...extra,
        });
      };
      for (const [extra, description] of [
        [{}, 'code_verifier is required'],
        [{ code_verifier: 'v'.repeat(60) }, 'code_verifier does not match'],
      ] as const) {
        const res = await exchange(extra);
        assert.equal(res.status, 400, `${JSON.stringify(extra)}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body.error, 'invalid_grant');
        assert.equal(res.body.error_description, description);
        assert.equal(res.body.access_token, undefined);
      }
      const unknownCode = await call(base, 'POST', '/api/oauth/token', {
        grant_type: 'authorization_code',
        code: 'A'.repeat(43),
        client_id: 'app-one',
        redirect_uri: REDIRECT_URI,
        code_verifier: 'v'.repeat(60),
      });
      assert.equal(unknownCode.status, 400, JSON.stringify(unknownCode.body));
      assert.equal(unknownCode.body.error, 'invalid_grant');
      assert.equal(unknownCode.body.error_description, 'the code is unknown, used or expired');
      const unknown = await call(base, 'POST', '/api/oauth/token', {
        grant_type: 'refresh_token',
        refresh_token: `kfr_${'A'.repeat(43)}`,
      });
      assert.equal(unknown.status, 400, JSON.stringify(unknown.body));
      assert.equal(unknown.body.error, 'invalid_grant');
      assert.equal(unknown.body.error_description, 'unknown refresh token');
      assert.deepEqual(await authorizationsOf(user.session), [], 'no authorization was created');
    });

    it('serves a client without PKCE, which the token endpoint allows: no challenge recorded, no verifier asked, no state invented', async () => {
      const user = await registerUser(base);
      const auth = await call(
        base,
        'POST',
        '/api/oauth/authorize',
        { client_id: 'plain-app', redirect_uri: REDIRECT_URI, scope: 'policy:full', approved: true },
        user.session,
      );
      assert.equal(auth.status, 200, JSON.stringify(auth.body));
      const code = recordSecret(auth.body.code as string);
      const redirect = new URL(auth.body.redirect_uri as string);
      assert.equal(redirect.searchParams.get('code'), code);
      assert.equal(redirect.searchParams.has('state'), false, `no state was sent, none comes back: ${redirect.search}`);
      const codeRow = async (c: string) =>
        (
          await sql('SELECT code_challenge, code_challenge_method FROM oauth_codes WHERE code_hash = $1', [
            hashToken(c),
          ])
        ).rows[0];
      assert.deepEqual(await codeRow(code), { code_challenge: null, code_challenge_method: null });
      // A PKCE client's code records the method its verifier will be checked with.
      const pkce = await codeFor(user.session, 'plain-app');
      assert.equal((await codeRow(pkce.code)).code_challenge_method, 'S256');

      const res = await call(base, 'POST', '/api/oauth/token', {
        grant_type: 'authorization_code',
        code,
        client_id: 'plain-app',
        redirect_uri: REDIRECT_URI,
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      recordSecret(res.body.access_token);
      recordSecret(res.body.refresh_token);
      assert.equal(res.body.token_type, 'Bearer');
      assert.equal((await rpc(base, res.body.access_token, 'ping')).status, 200);
    });

    it('stops an access token at once when its refresh token is rotated, though it was cached', async () => {
      const user = await registerUser(base);
      const app = await authorizeApp(base, user.session, 'full');
      assert.equal((await rpc(base, app.access_token, 'ping')).status, 200, 'the token is in use (and cached)');
      const refreshed = await call(base, 'POST', '/api/oauth/token', {
        grant_type: 'refresh_token',
        refresh_token: app.refresh_token,
      });
      assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
      recordSecret(refreshed.body.access_token);
      recordSecret(refreshed.body.refresh_token);
      assert.equal(refreshed.body.token_type, 'Bearer');
      assert.equal((await rpc(base, app.access_token, 'ping')).status, 401, 'the rotated access token is dead');
      assert.equal((await rpc(base, refreshed.body.access_token, 'ping')).status, 200);
    });

    it('issues prefixed tokens that live 24 hours (access) and 90 days (refresh)', async () => {
      const user = await registerUser(base);
      const { code, verifier } = await codeFor(user.session, 'app-one');
      assert.match(code, /^[A-Za-z0-9]{43}$/);
      const res = await call(base, 'POST', '/api/oauth/token', {
        grant_type: 'authorization_code',
        code,
        client_id: 'app-one',
        redirect_uri: REDIRECT_URI,
        code_verifier: verifier,
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const access = recordSecret(res.body.access_token as string);
      const refresh = recordSecret(res.body.refresh_token as string);
      assert.match(access, /^kfa_/);
      assert.match(refresh, /^kfr_/);
      const { rows } = await sql(
        `SELECT extract(epoch FROM access_expires_at - now())::float AS access, extract(epoch FROM refresh_expires_at - now())::float AS refresh
           FROM oauth_tokens WHERE access_hash = $1`,
        [hashToken(access)],
      );
      const left = rows[0] as { access: number; refresh: number };
      assert.ok(Math.abs(left.access - 24 * 3600) < 120, `access token lives ${left.access} s`);
      assert.ok(Math.abs(left.refresh - 90 * 24 * 3600) < 120, `refresh token lives ${left.refresh} s`);
    });
  });

  describe('expiry (rows aged in the database, before the token is first used)', () => {
    it('refuses RPC under an authorization whose expires_at has passed (403)', async () => {
      const user = await registerUser(base);
      const app = await authorizeApp(base, user.session, 'full');
      const [grant] = await authorizationsOf(user.session);
      await sql(`UPDATE authorizations SET expires_at = now() - interval '1 second' WHERE id = $1`, [
        grant!.authorization_id,
      ]);
      const res = await rpc(base, app.access_token, 'sign_event', [
        { kind: 1, content: 'after expiry', tags: [], created_at: 1_700_000_000 },
      ]);
      assert.equal(res.status, 403, JSON.stringify(res.body));
      assert.match(res.body.error, /authorization expired/);
      assert.equal((await rpc(base, app.access_token, 'get_public_key')).status, 403);
    });

    it('refuses an access token past its expiry (401), while its refresh token still works', async () => {
      const user = await registerUser(base);
      const app = await authorizeApp(base, user.session, 'full');
      await sql(`UPDATE oauth_tokens SET access_expires_at = now() - interval '1 second' WHERE access_hash = $1`, [
        hashToken(app.access_token),
      ]);
      const res = await rpc(base, app.access_token, 'ping');
      assert.equal(res.status, 401, JSON.stringify(res.body));
      const refreshed = await call(base, 'POST', '/api/oauth/token', {
        grant_type: 'refresh_token',
        refresh_token: app.refresh_token,
      });
      assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
      recordSecret(refreshed.body.access_token);
      recordSecret(refreshed.body.refresh_token);
      assert.equal((await rpc(base, refreshed.body.access_token, 'ping')).status, 200);
    });

    it('refuses a refresh token past its expiry (invalid_grant) and issues nothing', async () => {
      const user = await registerUser(base);
      const app = await authorizeApp(base, user.session, 'full');
      await sql(`UPDATE oauth_tokens SET refresh_expires_at = now() - interval '1 second' WHERE refresh_hash = $1`, [
        hashToken(app.refresh_token),
      ]);
      const res = await call(base, 'POST', '/api/oauth/token', {
        grant_type: 'refresh_token',
        refresh_token: app.refresh_token,
      });
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.equal(res.body.error, 'invalid_grant');
      assert.equal(res.body.access_token, undefined);
      const { rows } = await sql(
        'SELECT count(*)::int AS n FROM oauth_tokens t JOIN authorizations a ON a.id = t.authorization_id WHERE a.user_id = (SELECT user_id FROM sessions WHERE token_hash = $1)',
        [hashToken(user.session)],
      );
      assert.equal(rows[0].n, 1, 'no new token pair');
    });

    it('refuses a session past its expiry (401) on the JSON routes and sends the browser to log in', async () => {
      const user = await registerUser(base);
      await sql(`UPDATE sessions SET expires_at = now() - interval '1 second' WHERE token_hash = $1`, [
        hashToken(user.session),
      ]);
      assert.equal((await call(base, 'GET', '/api/user/account', undefined, user.session)).status, 401);
      assert.equal(
        (await call(base, 'POST', '/api/user/bunker/create', { app_name: 'late' }, user.session)).status,
        401,
      );
      const page = await fetch(`${base}/account`, {
        headers: { cookie: `keyfarm_session=${user.session}` },
        redirect: 'manual',
      });
      assert.equal(page.status, 303);
      assert.match(page.headers.get('location') ?? '', /^\/login/);
    });
  });

  it('ends every other session of the account when the password changes', async () => {
    const user = await registerUser(base);
    const other = await call(base, 'POST', '/api/auth/login', { email: user.email, password: user.password });
    assert.equal(other.status, 200);
    const otherSession = recordSecret(other.body.token as string);
    assert.equal((await call(base, 'GET', '/api/user/account', undefined, otherSession)).status, 200);

    const newPassword = recordSecret(`new-${user.password}`);
    const page = await browser(user.session, '/account/password');
    const changed = await page.post({
      current_password: user.password,
      new_password: newPassword,
      confirm_password: newPassword,
    });
    assert.equal(changed.status, 200, await changed.text());

    assert.equal(
      (await call(base, 'GET', '/api/user/account', undefined, otherSession)).status,
      401,
      'the other session is over',
    );
    assert.equal(
      (await call(base, 'GET', '/api/user/account', undefined, user.session)).status,
      200,
      'the session that changed it stays',
    );
    assert.equal(
      (await call(base, 'POST', '/api/auth/login', { email: user.email, password: user.password })).status,
      401,
    );
    const fresh = await call(base, 'POST', '/api/auth/login', { email: user.email, password: newPassword });
    assert.equal(fresh.status, 200);
    recordSecret(fresh.body.token);
  });

  it('stops password spraying: wrong passwords from one address over many accounts end in 429', async () => {
    // Each account sees one wrong password only, so no per-account limit can be what stops this.
    const sprayer = { 'x-forwarded-for': '203.0.113.77' };
    const statuses: number[] = [];
    const bound = 200;
    for (let i = 0; i < bound; i++) {
      const victim = await registerUser(base);
      const res = await call(
        base,
        'POST',
        '/api/auth/login',
        { email: victim.email, password: 'not the password' },
        undefined,
        sprayer,
      );
      statuses.push(res.status);
      if (res.status !== 401) break;
    }
    assert.equal(statuses.at(-1), 429, `no 429 within ${bound} accounts: ${statuses.join(',')}`);
    assert.ok(
      statuses.slice(0, -1).every((s) => s === 401),
      statuses.join(','),
    );
    assert.ok(statuses.length > 1, 'the address was refused only after failures');

    // The address stays refused, even with a right password; the account itself is not locked.
    const next = await registerUser(base);
    const refused = await call(
      base,
      'POST',
      '/api/auth/login',
      { email: next.email, password: next.password },
      undefined,
      sprayer,
    );
    assert.equal(refused.status, 429);
    assert.ok(Number(refused.headers.get('retry-after')) > 0);
    assert.equal(refused.body.token, undefined);
    const elsewhere = await call(
      base,
      'POST',
      '/api/auth/login',
      { email: next.email, password: next.password },
      undefined,
      { 'x-forwarded-for': '198.51.100.8' },
    );
    assert.equal(elsewhere.status, 200);
    recordSecret(elsewhere.body.token);
  });

  it('refuses a key export under a passphrase shorter than the minimum, with no key in the answer', async () => {
    const user = await registerUser(base);
    await confirmEmail(base, farm.config.DATA_DIR, user.email);
    const page = await browser(user.session, '/account/export');
    const weak = await page.post({ password: user.password, passphrase: 'seven77', confirm_passphrase: 'seven77' });
    const weakBody = await weak.text();
    assert.equal(weak.status, 400, weakBody);
    assert.doesNotMatch(weakBody, /nsec1|ncryptsec1/);
    // At the minimum (8 characters) the export is given.
    const ok = await page.post({ password: user.password, passphrase: 'eight888', confirm_passphrase: 'eight888' });
    const okBody = await ok.text();
    assert.equal(ok.status, 200);
    const nsec = /nsec1[02-9ac-hj-np-z]{58}/.exec(okBody)?.[0];
    assert.ok(nsec, 'the export page shows the nsec');
    recordSecret(nsec);
    const decoded = nip19.decode(nsec);
    assert.equal(decoded.type, 'nsec');
    // The ncryptsec asked for is on the page, and opens (NIP-49) to the same key under that passphrase.
    const ncryptsec = /ncryptsec1[02-9ac-hj-np-z]+/.exec(okBody)?.[0];
    assert.ok(ncryptsec, 'the export page shows the ncryptsec');
    recordSecret(ncryptsec);
    assert.deepEqual(nip49Decrypt(ncryptsec, 'eight888'), decoded.data);
    // Without a passphrase: the nsec alone.
    const plain = await page.post({ password: user.password, passphrase: '', confirm_passphrase: '' });
    const plainBody = await plain.text();
    assert.equal(plain.status, 200, plainBody);
    assert.equal(/nsec1[02-9ac-hj-np-z]{58}/.exec(plainBody)?.[0], nsec);
    assert.doesNotMatch(plainBody, /ncryptsec1/);
  });

  it('zeroes the key it opened once a key export is answered, with a passphrase and without', async () => {
    const user = await registerUser(base);
    await confirmEmail(base, farm.config.DATA_DIR, user.email);
    const { rows } = await sql('SELECT user_id FROM sessions WHERE token_hash = $1', [hashToken(user.session)]);
    const userId = rows[0].user_id as string;
    // The api's key store, watched: each secret key it hands out is kept to be looked at after the export.
    const store = new KeyStore(keyManagerB);
    const opened: Uint8Array[] = [];
    const keyStore = {
      open: async (db: Parameters<KeyStore['open']>[0], keyId: string) => {
        const key = await store.open(db, keyId);
        opened.push(key.secretKey);
        return key;
      },
    };
    const redis = createRedis(farm.rt.redisUrl);
    try {
      const loginLimiter = new LoginLimiter(redis, farm.config.KEY_PREFIX);
      const ctx = {
        config: farm.config,
        db: farm.rt.db,
        redis,
        keyStore,
        loginLimiter,
        logger: testLogger('security-http-export'),
      } as unknown as ApiContext;
      for (const passphrase of [undefined, 'eight888']) {
        const result = await exportUserKey(ctx, {
          userId,
          password: user.password,
          ip: '192.0.2.7',
          ...(passphrase ? { passphrase } : {}),
        });
        recordSecret(result.nsec);
        if (result.ncryptsec) recordSecret(result.ncryptsec);
        const exported = nip19.decode(result.nsec).data as Uint8Array;
        assert.ok(
          exported.some((b) => b !== 0),
          'the export holds the key',
        );
        const key = opened.at(-1)!;
        assert.equal(key.length, 32);
        assert.ok(
          key.every((b) => b === 0),
          `the key opened for the export is zeroed (passphrase: ${passphrase !== undefined})`,
        );
      }
      assert.equal(opened.length, 2);
    } finally {
      redis.disconnect();
    }
  });

  it('answers 404 to a key export for an account deleted while the request was under way', async () => {
    const user = await registerUser(base);
    const { rows } = await sql('SELECT user_id FROM sessions WHERE token_hash = $1', [hashToken(user.session)]);
    const userId = rows[0].user_id as string;
    // The session was checked, then the account went (deleted in another tab): the export reads no key.
    await sql('DELETE FROM users WHERE id = $1', [userId]);
    const ctx = { db: farm.rt.db } as unknown as ApiContext;
    await assert.rejects(exportUserKey(ctx, { userId, password: user.password, ip: '192.0.2.1' }), (err: unknown) => {
      assert.ok(err instanceof HttpError, String(err));
      assert.equal(err.statusCode, 404);
      assert.equal(err.message, 'no such account');
      return true;
    });
  });

  describe('a token for one door is refused at the other', () => {
    it('refuses a session token as an RPC access token (401)', async () => {
      const user = await registerUser(base);
      await authorizeApp(base, user.session, 'full');
      const res = await rpc(base, user.session, 'get_public_key');
      assert.equal(res.status, 401, JSON.stringify(res.body));
      assert.equal(res.body.result, undefined);
    });

    it('refuses an access or refresh token as a session, by bearer and by cookie (401)', async () => {
      const user = await registerUser(base);
      const app = await authorizeApp(base, user.session, 'full');
      for (const token of [app.access_token, app.refresh_token]) {
        assert.equal((await call(base, 'GET', '/api/user/account', undefined, token)).status, 401);
        assert.equal(
          (await call(base, 'POST', '/api/user/bunker/create', { app_name: 'by token' }, token)).status,
          401,
        );
        const byCookie = await call(base, 'GET', '/api/user/account', undefined, undefined, {
          cookie: `keyfarm_session=${token}`,
        });
        assert.equal(byCookie.status, 401);
      }
      assert.equal((await authorizationsOf(user.session)).length, 1, 'nothing was created with the app token');
    });

    it('as a session, looks up a token of up to 512 characters and refuses a longer one unread (401)', async () => {
      // Both tokens are live sessions of the user in the database: only the cap tells them apart.
      const user = await registerUser(base);
      const { rows } = await sql('SELECT user_id FROM sessions WHERE token_hash = $1', [hashToken(user.session)]);
      const atCap = recordSecret(`kfs_${'a'.repeat(508)}`);
      const overCap = recordSecret(`kfs_${'b'.repeat(509)}`);
      assert.equal(atCap.length, 512);
      for (const token of [atCap, overCap]) {
        await sql(`INSERT INTO sessions (token_hash, user_id, expires_at) VALUES ($1, $2, now() + interval '1 hour')`, [
          hashToken(token),
          rows[0].user_id,
        ]);
      }
      const served = await call(base, 'GET', '/api/user/account', undefined, atCap);
      assert.equal(served.status, 200, JSON.stringify(served.body));
      assert.equal(served.body.email, user.email);
      const refused = await call(base, 'GET', '/api/user/account', undefined, overCap);
      assert.equal(refused.status, 401);
      assert.deepEqual(refused.body, { error: 'a valid session is required' });
    });
  });

  describe('revoke while the revocation broadcast or Redis is down', () => {
    const ready = (url: string) => call(url, 'GET', '/healthz/ready').then((r) => r.status);

    /** A user whose access token both api instances have just honoured (so both hold it in cache). */
    async function grantUsedOnBoth() {
      const user = await registerUser(base);
      const app = await authorizeApp(base, user.session, 'full');
      assert.equal((await rpc(base, app.access_token, 'ping')).status, 200);
      assert.equal((await rpc(apiB.url, app.access_token, 'ping')).status, 200);
      const [grant] = await authorizationsOf(user.session);
      return { user, token: app.access_token, authorizationId: grant!.authorization_id };
    }

    async function restore(proxy: CuttableProxy, url: string) {
      proxy.restore();
      await waitFor(`${url} ready again`, async () => (await ready(url)) === 200, 15_000);
    }

    it('an instance that cannot hear the broadcast stops honouring a token revoked elsewhere', async () => {
      const { user, token, authorizationId } = await grantUsedOnBoth();
      proxyB.cut();
      await waitFor('api B to see Redis gone', async () => (await ready(apiB.url)) === 503, 10_000);
      try {
        const revoked = await call(
          base,
          'POST',
          '/api/user/sessions/revoke',
          { authorization_id: authorizationId },
          user.session,
        );
        assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
        // B missed the eviction; it must not answer from its cache.
        const onB = await rpc(apiB.url, token, 'ping');
        assert.equal(onB.status, 403, `api B honoured a revoked token: ${JSON.stringify(onB.body)}`);
        assert.equal((await rpc(base, token, 'ping')).status, 403);
      } finally {
        await restore(proxyB, apiB.url);
      }
      assert.equal((await rpc(apiB.url, token, 'ping')).status, 403, 'still refused once B hears broadcasts again');
    });

    it('a revoke with Redis down for every instance is saved, and no instance honours the token', async () => {
      const { user, token, authorizationId } = await grantUsedOnBoth();
      proxyA.cut();
      proxyB.cut();
      try {
        await waitFor(
          'both apis to see Redis gone',
          async () => (await ready(base)) === 503 && (await ready(apiB.url)) === 503,
          10_000,
        );
        const revoked = await call(
          base,
          'POST',
          '/api/user/sessions/revoke',
          { authorization_id: authorizationId },
          user.session,
        );
        // The broadcast cannot be sent: either answer is honest, as long as the revoke itself holds.
        assert.ok(
          [200, 503].includes(revoked.status),
          `revoke answered ${revoked.status} ${JSON.stringify(revoked.body)}`,
        );
        const { rows } = await sql('SELECT revoked_at FROM authorizations WHERE id = $1', [authorizationId]);
        assert.notEqual(rows[0].revoked_at, null, 'the revoke is saved');
        assert.equal((await rpc(base, token, 'ping')).status, 403, 'api A honoured a revoked token');
        assert.equal((await rpc(apiB.url, token, 'ping')).status, 403, 'api B honoured a revoked token');
      } finally {
        await restore(proxyA, base);
        await restore(proxyB, apiB.url);
      }
      assert.equal((await rpc(base, token, 'ping')).status, 403);
      assert.equal((await rpc(apiB.url, token, 'ping')).status, 403);
      const [grant] = await authorizationsOf(user.session);
      assert.notEqual(grant!.revoked_at, null);
    });
  });
});
