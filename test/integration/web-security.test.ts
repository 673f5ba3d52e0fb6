// The web side's defences over plain HTTP, behind an https PUBLIC_URL: security headers, cookie flags, CORS by
// ALLOWED_ORIGINS, CSRF tokens on every form, the authorize page's checks, the admin switch, and the key
// export counted like a login.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { call, pkcePair, registerUser } from '../support/client.js';
import { startTestFarm, type TestFarm } from '../support/farm.js';
import { recordSecret } from '../support/logs.js';
import { confirmEmail } from '../support/mail.js';

const PUBLIC_URL = 'https://keyfarm.example';
const APP_ORIGIN = 'https://app.example';
const CSRF_COOKIE = '__Host-keyfarm_csrf';

const cookiePair = (setCookie: string | null, name: string) => {
  const match = new RegExp(`(?:^|,\\s*)(${name.replace(/[-$]/g, '\\$&')}=[^;]+)`).exec(setCookie ?? '');
  return match?.[1];
};

describe('web security', () => {
  let farm: TestFarm;
  let base: string;

  before(async () => {
    farm = await startTestFarm(
      'web-security',
      { PUBLIC_URL, ALLOWED_ORIGINS: APP_ORIGIN, ADMIN_PASSWORD: '' },
      { api: true },
    );
    base = farm.url;
  });
  after(async () => farm?.stop());

  /** A signed-in browser's cookies (session + CSRF secret) and the form token of `path`. */
  async function browserSession(path = '/account') {
    const user = await registerUser(base);
    const session = `keyfarm_session=${user.session}`;
    const res = await fetch(base + path, { headers: { cookie: session }, redirect: 'manual' });
    const html = await res.text();
    const csrfCookie = cookiePair(res.headers.get('set-cookie'), CSRF_COOKIE);
    const token = /name="_csrf" value="([^"]+)"/.exec(html)?.[1];
    assert.ok(csrfCookie && token, `a form token on ${path}`);
    return { user, cookie: `${session}; ${csrfCookie}`, session, token, html, res };
  }

  const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
  const formHeaders = (cookie: string) => ({ 'content-type': 'application/x-www-form-urlencoded', cookie });

  it('sends security headers: CSP, no framing, nosniff, no referrer, HSTS behind https, no caching of pages', async () => {
    const page = await fetch(`${base}/login`);
    const csp = page.headers.get('content-security-policy') ?? '';
    for (const directive of [
      "default-src 'none'",
      "script-src 'self'",
      "frame-ancestors 'none'",
      "form-action 'self'",
      'upgrade-insecure-requests',
    ]) {
      assert.ok(csp.includes(directive), directive);
    }
    assert.equal(page.headers.get('x-frame-options'), 'DENY');
    assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(page.headers.get('referrer-policy'), 'no-referrer');
    assert.match(page.headers.get('strict-transport-security') ?? '', /max-age=\d+/);
    assert.equal(page.headers.get('cache-control'), 'no-store');
    const json = await fetch(`${base}/health`);
    assert.equal(json.headers.get('x-content-type-options'), 'nosniff');
    assert.ok(json.headers.get('content-security-policy'));
  });

  it('sets the session cookie HttpOnly, SameSite=Lax and Secure, and the CSRF secret as a Secure __Host- cookie', async () => {
    const password = recordSecret(`cookie-flags-${Date.now()}`);
    const res = await call(base, 'POST', '/api/auth/register', { email: `flags-${Date.now()}@example.com`, password });
    recordSecret(res.body.token);
    const session = res.headers.get('set-cookie') ?? '';
    assert.match(session, /keyfarm_session=/);
    assert.match(session, /HttpOnly/i);
    assert.match(session, /SameSite=Lax/i);
    assert.match(session, /Secure/i);
    const login = await fetch(`${base}/login`);
    const csrf = login.headers.get('set-cookie') ?? '';
    assert.match(csrf, new RegExp(`^${CSRF_COOKIE.replace('-', '\\-')}=`));
    for (const flag of [/HttpOnly/i, /Secure/i, /SameSite=Strict/i, /Path=\//]) assert.match(csrf, flag);
  });

  it('limits credentialed CORS to ALLOWED_ORIGINS and opens the bearer routes to any origin without cookies', async () => {
    const preflight = (path: string, origin: string) =>
      fetch(base + path, {
        method: 'OPTIONS',
        headers: {
          origin,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'content-type,authorization',
        },
      });
    const allowed = await preflight('/api/user/sessions/revoke', APP_ORIGIN);
    assert.equal(allowed.status, 204);
    assert.equal(allowed.headers.get('access-control-allow-origin'), APP_ORIGIN);
    assert.equal(allowed.headers.get('access-control-allow-credentials'), 'true');
    assert.match(allowed.headers.get('access-control-allow-headers') ?? '', /x-csrf-token/);
    assert.equal(allowed.headers.get('access-control-allow-methods'), 'GET, POST');
    assert.equal(allowed.headers.get('access-control-max-age'), '600');
    assert.equal(allowed.headers.get('vary'), 'Origin');
    const other = await preflight('/api/user/sessions/revoke', 'https://evil.example');
    assert.equal(other.status, 404, 'a preflight from another origin finds nothing');
    assert.equal(other.headers.get('access-control-allow-origin'), null);
    assert.equal(other.headers.get('access-control-allow-credentials'), null);
    const noMethod = await fetch(`${base}/api/nostr`, { method: 'OPTIONS', headers: { origin: APP_ORIGIN } });
    assert.equal(noMethod.status, 400, 'a preflight without Access-Control-Request-Method is refused');

    const user = await registerUser(base);
    const read = (origin: string) =>
      fetch(`${base}/api/user/account`, { headers: { origin, cookie: `keyfarm_session=${user.session}` } });
    const fromApp = await read(APP_ORIGIN);
    assert.equal(fromApp.headers.get('access-control-allow-origin'), APP_ORIGIN);
    assert.equal(fromApp.headers.get('access-control-allow-credentials'), 'true');
    assert.equal((await read('https://evil.example')).headers.get('access-control-allow-origin'), null);

    for (const path of ['/api/nostr', '/api/oauth/token']) {
      const open = await preflight(path, 'https://any-app.example');
      assert.equal(open.status, 204, path);
      assert.equal(open.headers.get('access-control-allow-origin'), '*', path);
      assert.equal(open.headers.get('access-control-allow-credentials'), null, path);
      assert.match(open.headers.get('access-control-allow-headers') ?? '', /authorization/, path);
      assert.doesNotMatch(open.headers.get('access-control-allow-headers') ?? '', /x-csrf-token/, path);
    }
    const rpc = await fetch(`${base}/api/nostr`, {
      method: 'POST',
      headers: { origin: 'https://any-app.example', 'content-type': 'application/json' },
      body: '{"method":"ping"}',
    });
    assert.equal(rpc.status, 401);
    assert.equal(rpc.headers.get('access-control-allow-origin'), '*');
    assert.equal(rpc.headers.get('access-control-expose-headers'), 'x-trace-id, retry-after');
    // Pages have no CORS at all.
    assert.equal(
      (await fetch(`${base}/login`, { headers: { origin: APP_ORIGIN } })).headers.get('access-control-allow-origin'),
      null,
    );
  });

  it('refuses a form or text post that rides on the session cookie without a CSRF token', async () => {
    const { user, cookie, session } = await browserSession();
    const created = await call(base, 'POST', '/api/user/bunker/create', { app_name: 'csrf target' }, user.session);
    recordSecret(new URL(created.body.bunker_url).searchParams.get('secret')!);
    const id = created.body.authorization_id;

    const forged = await fetch(`${base}/api/user/sessions/revoke`, {
      method: 'POST',
      headers: formHeaders(cookie),
      body: form({ authorization_id: id }),
    });
    assert.equal(forged.status, 403);
    const text = await fetch(`${base}/api/auth/logout`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain', cookie },
      body: 'x',
    });
    assert.equal(text.status, 403);
    const noBody = await fetch(`${base}/logout`, { method: 'POST', headers: { cookie } });
    assert.equal(noBody.status, 403);
    assert.match(noBody.headers.get('content-type') ?? '', /text\/html/);
    assert.match(await noBody.text(), /This form has expired/);
    // Nothing happened: the authorization stands and the session works.
    const list = await call(base, 'GET', '/api/user/sessions', undefined, undefined, { cookie: session });
    assert.equal(list.status, 200);
    assert.equal(list.body[0].revoked_at, null);

    // JSON needs no token (a cross-site page cannot send it without a preflight), nor does a bearer token.
    const json = await call(base, 'POST', '/api/user/sessions/revoke', { authorization_id: id }, undefined, {
      cookie: session,
    });
    assert.equal(json.status, 200);
  });

  it('logs out through the page only with the form token', async () => {
    const { cookie, session, token } = await browserSession();
    const res = await fetch(`${base}/logout`, {
      method: 'POST',
      headers: formHeaders(cookie),
      body: form({ _csrf: token }),
      redirect: 'manual',
    });
    assert.equal(res.status, 303);
    assert.equal(res.headers.get('location'), '/login');
    assert.equal((await call(base, 'GET', '/api/user/account', undefined, undefined, { cookie: session })).status, 401);
  });

  it('refuses a login form without a token (login CSRF)', async () => {
    const user = await registerUser(base);
    const res = await fetch(`${base}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: form({ email: user.email, password: user.password }),
      redirect: 'manual',
    });
    assert.equal(res.status, 403);
    assert.doesNotMatch(res.headers.get('set-cookie') ?? '', /keyfarm_session=/);
  });

  describe('GET /api/oauth/authorize', () => {
    const { challenge } = pkcePair();
    const authorize = (params: Record<string, string>, cookie?: string) =>
      fetch(`${base}/api/oauth/authorize?${new URLSearchParams(params)}`, {
        redirect: 'manual',
        headers: cookie ? { cookie } : {},
      });
    const good = {
      client_id: 'Web App',
      redirect_uri: 'https://app.example/cb',
      scope: 'policy:readonly',
      code_challenge: '',
      code_challenge_method: 'S256',
      state: 'xyz',
    };
    before(() => {
      good.code_challenge = challenge;
    });

    it('refuses a bad redirect_uri or a missing client_id with a page, never a redirect', async () => {
      for (const redirect of ['http://app.example/cb', 'ftp://127.0.0.1/cb', 'https://app.example/cb#x', 'not a url']) {
        const res = await authorize({ ...good, redirect_uri: redirect });
        assert.equal(res.status, 400, redirect);
        assert.equal(res.headers.get('location'), null);
        assert.doesNotMatch(await res.text(), /type="password"/);
      }
      const { client_id: _omit, ...noClient } = good;
      assert.equal((await authorize(noClient)).status, 400);
    });

    it('sends other mistakes back to the app as OAuth errors, with the state', async () => {
      const cases: [Record<string, string>, string][] = [
        [{ code_challenge_method: 'plain' }, 'invalid_request'],
        [{ code_challenge: 'short' }, 'invalid_request'],
        [{ scope: 'policy:nope' }, 'invalid_scope'],
        [{ response_type: 'token' }, 'unsupported_response_type'],
      ];
      for (const [change, error] of cases) {
        const res = await authorize({ ...good, ...change });
        assert.equal(res.status, 302, JSON.stringify(change));
        const location = new URL(res.headers.get('location')!);
        assert.equal(location.origin + location.pathname, good.redirect_uri);
        assert.equal(location.searchParams.get('error'), error);
        assert.equal(location.searchParams.get('state'), 'xyz');
      }
    });

    it('asks for a login first, then shows a consent page that cannot be framed and lets the app origin receive the form', async () => {
      const anonymous = await authorize(good);
      assert.equal(anonymous.status, 200);
      const login = await anonymous.text();
      assert.match(login, /Web App wants to use your Nostr key/);
      assert.match(login, /name="next" value="\/api\/oauth\/authorize\?/);

      const { cookie } = await browserSession();
      const consent = await authorize(good, cookie);
      const html = await consent.text();
      assert.match(html, /Allow <span id="app-name">Web App<\/span>/);
      assert.match(html, /Read only/);
      assert.equal(consent.headers.get('x-frame-options'), 'DENY');
      assert.match(consent.headers.get('content-security-policy') ?? '', /form-action 'self' https:\/\/app\.example;/);
      assert.match(consent.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
    });

    it('issues a code from the consent form only with its token (or to a bearer caller)', async () => {
      const { user, cookie, token } = await browserSession();
      const fields = {
        client_id: good.client_id,
        redirect_uri: good.redirect_uri,
        scope: good.scope,
        code_challenge: challenge,
        code_challenge_method: 'S256',
        state: 'xyz',
        approved: 'true',
      };
      const forged = await fetch(`${base}/api/oauth/authorize`, {
        method: 'POST',
        headers: formHeaders(cookie),
        body: form(fields),
        redirect: 'manual',
      });
      assert.equal(forged.status, 403);
      assert.equal(forged.headers.get('location'), null);

      const real = await fetch(`${base}/api/oauth/authorize`, {
        method: 'POST',
        headers: formHeaders(cookie),
        body: form({ ...fields, _csrf: token }),
        redirect: 'manual',
      });
      assert.equal(real.status, 302);
      const code = new URL(real.headers.get('location')!).searchParams.get('code');
      assert.ok(code);
      recordSecret(code);

      const bearer = await fetch(`${base}/api/oauth/authorize`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Bearer ${user.session}` },
        body: form(fields),
        redirect: 'manual',
      });
      assert.equal(bearer.status, 302);
      recordSecret(new URL(bearer.headers.get('location')!).searchParams.get('code') ?? '');
      // The token endpoint takes RFC 6749 form bodies without any cookie or token.
      const exchange = await fetch(`${base}/api/oauth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: form({
          grant_type: 'authorization_code',
          code: 'kfc_unknown',
          client_id: 'x',
          redirect_uri: good.redirect_uri,
        }),
      });
      assert.equal(exchange.status, 400);
      assert.equal(((await exchange.json()) as { error: string }).error, 'invalid_grant');
    });
  });

  it('turns the queue dashboard off, with a clear JSON error, when ADMIN_PASSWORD is unset', async () => {
    for (const path of ['/admin/queues', '/admin/queues/api/queues']) {
      const res = await call(base, 'GET', path);
      assert.equal(res.status, 404, path);
      assert.match(res.body.error, /ADMIN_PASSWORD/);
    }
  });

  it('counts a key export password like a login: five failures, then 429 for the export and for logins', async () => {
    const { user, cookie, token } = await browserSession('/account/export');
    await confirmEmail(base, farm.config.DATA_DIR, user.email);
    const tryExport = (password: string) =>
      fetch(`${base}/account/export`, {
        method: 'POST',
        headers: formHeaders(cookie),
        body: form({
          password,
          passphrase: 'long enough passphrase',
          confirm_passphrase: 'long enough passphrase',
          _csrf: token,
        }),
      });
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await tryExport('a wrong password')).status);
    assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429]);
    const locked = await tryExport(user.password);
    assert.equal(locked.status, 429);
    assert.ok(Number(locked.headers.get('retry-after')) > 0);
    assert.doesNotMatch(await locked.text(), /nsec1/);
    assert.equal(
      (await call(base, 'POST', '/api/auth/login', { email: user.email, password: user.password })).status,
      429,
    );
    // Without a session the page sends the browser to the login page.
    const anonymous = await fetch(`${base}/account/export`, { redirect: 'manual' });
    assert.equal(anonymous.status, 303);
    assert.equal(anonymous.headers.get('location'), '/login?next=%2Faccount%2Fexport');
  });
});
