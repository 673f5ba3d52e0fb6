// User values that reach a response header: the return path after login (Location), an app's redirect_uri
// (the consent page's CSP, the OAuth redirect's Location), x-trace-id and Origin. Each attack is sent to a
// real farm; none may answer 5xx or get its value into a header.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { call, pkcePair, registerUser } from '../support/client.js';
import { startTestFarm, type TestFarm } from '../support/farm.js';
import { recordSecret } from '../support/logs.js';

/** A Location a browser can only read as a path of this site. */
const SAME_SITE_PATH = /^\/(?![/\\])[\x21-\x7e]*$/;
const KNOWN_CSP_DIRECTIVES = new Set([
  'default-src',
  'script-src',
  'style-src',
  'img-src',
  'connect-src',
  'form-action',
  'frame-ancestors',
  'base-uri',
  'object-src',
  'upgrade-insecure-requests',
]);

/** Every directive of a CSP is one we write, and form-action lists only 'self' and plain origins. */
function assertOwnCsp(csp: string | null, what: string) {
  assert.ok(csp, `${what}: a CSP`);
  for (const directive of csp.split(';').map((d) => d.trim())) {
    const [name, ...sources] = directive.split(/ +/);
    assert.ok(KNOWN_CSP_DIRECTIVES.has(name!), `${what}: unexpected directive ${JSON.stringify(directive)} in ${csp}`);
    if (name === 'form-action') {
      for (const source of sources)
        assert.match(source, /^(?:'self'|https?:\/\/[a-z0-9.-]+(?::\d+)?)$/, `${what}: form-action source ${source}`);
    }
  }
}

describe('user values in response headers', () => {
  let farm: TestFarm;
  let base: string;
  let session: string;

  before(async () => {
    farm = await startTestFarm('fuzz-headers', {}, { api: true });
    base = farm.url;
    session = (await registerUser(base)).session;
  });
  after(async () => farm?.stop());

  const withSession = () => ({ cookie: `keyfarm_session=${session}` });

  it('turns any next into a same-site path: percent-encoded, or /account', async () => {
    const cases: [string, string | undefined][] = [
      ['/%C4%80', '/%C4%80'], // U+0100: once a 500 (ERR_INVALID_CHAR in Location)
      [encodeURIComponent('/💥?q=é#—'), '/%F0%9F%92%A5?q=%C3%A9#%E2%80%94'],
      ['/%ED%A0%80', undefined], // invalid UTF-8
      ['/.//evil.example', '/account'], // normalises to //evil.example
      ['/%0D%0ASet-Cookie:%20x=1', '/account'],
      ['/a%00b', '/account'],
      ['/%E2%80%A8evil', '/account'],
      ['//evil.example', '/account'],
      ['/\\evil.example', '/account'],
      [`/${'%C4%80'.repeat(1000)}`, '/account'], // fits 4096 decoded, not once encoded
    ];
    for (const [next, expected] of cases) {
      const res = await fetch(`${base}/login?next=${next}`, { headers: withSession(), redirect: 'manual' });
      assert.equal(res.status, 303, `${next}: ${res.status}`);
      const location = res.headers.get('location') ?? '';
      assert.match(location, SAME_SITE_PATH, `${next} -> ${location}`);
      if (expected) assert.equal(location, expected, next);
      assert.equal(res.headers.get('set-cookie')?.includes('x=1') ?? false, false);
    }
  });

  it('renders the login and register pages for any next, including a lone surrogate in a JSON form', async () => {
    for (const path of ['/login', '/register']) {
      const page = await fetch(`${base}${path}?next=/%C4%80%ED%A0%80`);
      assert.equal(page.status, 200, path);
      assert.match(await page.text(), /name="next" value="\/account"|name="next" value="\/%C4%80/);
    }
    // JSON needs no form token; the page rebuilt after a failed login once crashed in encodeURIComponent.
    const password = recordSecret(`wrong-${Date.now()}-password`);
    for (const path of ['/login', '/register']) {
      const res = await call(base, 'POST', path, { email: 'not-an-address', password, next: '/\ud800x', _csrf: 'x' });
      assert.ok(res.status >= 400 && res.status < 500, `${path}: ${res.status}`);
      assert.match(String(res.body), /href="\/(?:register|login)\?next=%2F(?:account|%25EF%25BF%25BDx)"/);
    }
  });

  describe('an app redirect_uri', () => {
    const { challenge } = pkcePair();
    const authorizeQuery = (redirectUri: string) =>
      new URLSearchParams({
        client_id: 'Header App',
        redirect_uri: redirectUri,
        scope: 'policy:full',
        code_challenge: challenge,
        code_challenge_method: 'S256',
        state: 's',
      });
    const HOSTILE = [
      'https://evil.example;sandbox/cb', // once copied into the CSP as a directive of its own
      'https://evil.example;script-src/cb',
      'https://a.example,b.example/cb',
      'https://a"b.example/cb',
      "https://a'b.example/cb",
      'https://a_b.example/cb',
      'https://*.example/cb',
      'https://user:pw@app.example/cb',
    ];

    it('is shown a consent page with its origin in form-action when well formed (control)', async () => {
      const res = await fetch(`${base}/api/oauth/authorize?${authorizeQuery('https://app.example:8443/cb')}`, {
        headers: withSession(),
        redirect: 'manual',
      });
      assert.equal(res.status, 200);
      const csp = res.headers.get('content-security-policy');
      assertOwnCsp(csp, 'control');
      assert.match(csp!, /form-action 'self' https:\/\/app\.example:8443;/);
    });

    it('is refused with a page, never reaching the CSP or a Location, when its host is not a plain name', async () => {
      for (const uri of HOSTILE) {
        const res = await fetch(`${base}/api/oauth/authorize?${authorizeQuery(uri)}`, {
          headers: withSession(),
          redirect: 'manual',
        });
        assert.equal(res.status, 400, uri);
        assert.equal(res.headers.get('location'), null, uri);
        const csp = res.headers.get('content-security-policy');
        assertOwnCsp(csp, uri);
        assert.doesNotMatch(csp!, /evil|sandbox|a\.example|app\.example|\*/, uri);
      }
    });

    it('is refused by POST /api/oauth/authorize (JSON and form), so no code or redirect goes to it', async () => {
      for (const uri of HOSTILE) {
        const json = await call(
          base,
          'POST',
          '/api/oauth/authorize',
          {
            client_id: 'Header App',
            redirect_uri: uri,
            scope: 'policy:full',
            approved: true,
            code_challenge: challenge,
            code_challenge_method: 'S256',
          },
          session,
        );
        assert.equal(json.status, 400, uri);
        assert.equal(json.body.error, 'invalid_request', uri);
        assert.equal(json.body.code, undefined);
        // A denial used to redirect straight to the given URI.
        const form = await call(
          base,
          'POST',
          '/api/oauth/authorize',
          new URLSearchParams({ client_id: 'x', redirect_uri: uri, approved: 'false' }).toString(),
          session,
          { 'content-type': 'application/x-www-form-urlencoded' },
        );
        assert.equal(form.status, 400, uri);
        assert.equal(form.headers.get('location'), null, uri);
      }
    });
  });

  it('does not echo a hostile x-trace-id or Origin', async () => {
    for (const traceId of ['a;b', 'a b', 'x'.repeat(200), 'a,b']) {
      const res = await call(base, 'GET', '/health', undefined, undefined, { 'x-trace-id': traceId });
      assert.equal(res.status, 200);
      assert.notEqual(res.headers.get('x-trace-id'), traceId);
      assert.match(res.headers.get('x-trace-id') ?? '', /^[A-Za-z0-9._:-]{1,128}$/);
    }
    const fine = await call(base, 'GET', '/health', undefined, undefined, { 'x-trace-id': 'trace-1.a:b' });
    assert.equal(fine.headers.get('x-trace-id'), 'trace-1.a:b');
    const res = await call(base, 'GET', '/api/user/account', undefined, undefined, {
      ...withSession(),
      origin: 'https://evil.example',
    });
    assert.equal(res.headers.get('access-control-allow-origin'), null);
    assert.equal(res.headers.get('access-control-allow-credentials'), null);
  });
});
