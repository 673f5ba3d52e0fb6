// Keycast compatibility against a real farm (api, relay-ingest, workers on real Redis and PostgreSQL, a test
// relay): an app written for Keycast, driving the requests keycast-login makes, with only the base URL
// changed. Its default scope, the token response, silent re-authorization with the handle, bring your own
// key, polling, and NIP-46 with nostr-tools' BunkerSigner on the bunker URL it gets.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { bytesToHex } from '@noble/hashes/utils.js';
import { generateSecretKey, getPublicKey, nip19, nip44, verifyEvent } from 'nostr-tools';
import { type BunkerSigner, parseBunkerInput, type BunkerPointer } from 'nostr-tools/nip46';
import { useWebSocketImplementation as usePoolWebSocket } from 'nostr-tools/pool';
import WebSocket from 'ws';
import { call, pkcePair, registerUser, rpc } from '../support/client.js';
import { startTestFarm, type TestFarm } from '../support/farm.js';
import { recordSecret } from '../support/logs.js';
import type { TestRelay } from '../support/relay.js';
import { BunkerClients, startFarmOnTestRelay } from '../support/bunker.js';
import { within } from '../support/wait.js';

usePoolWebSocket(WebSocket);

const REDIRECT = 'http://127.0.0.1:9/keycast/callback';

interface KeycastTokens {
  bunker_url: string;
  access_token: string;
  token_type: string;
  expires_in: number;
  scope: string;
  policy: { slug: string };
  authorization_handle: string;
  refresh_token: string;
}

/** What keycast-login's KeycastOAuth does, written here: the authorize URL, the callback, the token exchange. */
class KeycastApp {
  pkce = pkcePair();

  constructor(
    readonly base: string,
    readonly clientId = 'keycast-app',
    readonly redirectUri = REDIRECT,
  ) {}

  /** getAuthorizationUrl: scope policy:social unless told; a handle and byok_pubkey when given. */
  authorizationUrl(
    o: {
      scopes?: string[];
      authorizationHandle?: string;
      byokPubkey?: string;
      verifier?: string;
      extra?: Record<string, string>;
    } = {},
  ): string {
    if (o.verifier)
      this.pkce = { verifier: o.verifier, challenge: createHash('sha256').update(o.verifier).digest('base64url') };
    const url = new URL(`${this.base}/api/oauth/authorize`);
    url.searchParams.set('client_id', this.clientId);
    url.searchParams.set('redirect_uri', this.redirectUri);
    url.searchParams.set('scope', o.scopes?.join(' ') ?? 'policy:social');
    url.searchParams.set('code_challenge', this.pkce.challenge);
    url.searchParams.set('code_challenge_method', 'S256');
    if (o.authorizationHandle) url.searchParams.set('authorization_handle', o.authorizationHandle);
    if (o.byokPubkey) url.searchParams.set('byok_pubkey', o.byokPubkey);
    for (const [k, v] of Object.entries(o.extra ?? {})) url.searchParams.set(k, v);
    return url.toString();
  }

  /** parseCallback */
  codeOf(location: string): string {
    const code = new URL(location).searchParams.get('code');
    assert.ok(code, `a code in ${location}`);
    return recordSecret(code);
  }

  /** exchangeCode: the JSON body keycast-login posts (grant_type included, as it sends it). */
  async exchange(code: string, body: Record<string, unknown> = {}) {
    const res = await call<KeycastTokens>(this.base, 'POST', '/api/oauth/token', {
      grant_type: 'authorization_code',
      code,
      client_id: this.clientId,
      redirect_uri: this.redirectUri,
      code_verifier: this.pkce.verifier,
      ...body,
    });
    if (res.status === 200) {
      recordSecret(res.body.access_token);
      recordSecret(res.body.refresh_token);
      recordSecret(res.body.authorization_handle);
      const secret = new URL(res.body.bunker_url.replace('bunker://', 'https://')).searchParams.get('secret');
      if (secret) recordSecret(secret);
    }
    return res;
  }
}

/** The browser: a GET of the authorize URL with the session cookie, not following redirects. */
function browse(url: string, session?: string) {
  return fetch(url, { headers: session ? { cookie: `keyfarm_session=${session}` } : {}, redirect: 'manual' });
}

/** The user allows on the consent page (its JSON form, as Keycast's page posts it). */
async function approve(app: KeycastApp, session: string, extra: Record<string, unknown> = {}): Promise<string> {
  const res = await call(
    app.base,
    'POST',
    '/api/oauth/authorize',
    {
      client_id: app.clientId,
      redirect_uri: app.redirectUri,
      scope: 'policy:social',
      approved: true,
      code_challenge: app.pkce.challenge,
      code_challenge_method: 'S256',
      ...extra,
    },
    session,
  );
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return recordSecret(res.body.code as string);
}

describe('Keycast compatibility (keycast-login against the farm)', () => {
  let farm: TestFarm;
  let relay: TestRelay;
  let base: string;
  const clients = new BunkerClients();

  before(async () => {
    ({ relay, farm } = await startFarmOnTestRelay('keycast', { RPC_TIMEOUT_MS: '3000' }));
    base = farm.url;
  });

  after(async () => {
    await clients.close();
    await farm?.stop();
    await relay?.stop();
  });

  async function signerFor(bunkerUrl: string): Promise<BunkerSigner> {
    const bp: BunkerPointer = (await parseBunkerInput(bunkerUrl))!;
    return clients.signer(bp);
  }

  const authorizations = async (session: string) =>
    (await call(base, 'GET', '/api/user/sessions', undefined, session)).body as {
      authorization_id: string;
      bunker_pubkey: string;
      policy: string;
      revoked_at: string | null;
    }[];

  it("runs keycast-login's flow with the default scope, then connect, get_public_key and sign_event over a relay", async () => {
    const user = await registerUser(base);
    const app = new KeycastApp(base);
    const consent = await browse(app.authorizationUrl(), user.session);
    assert.equal(consent.status, 200);
    assert.match(await consent.text(), /id="policy-name">Social</);

    const code = await approve(app, user.session);
    assert.match(code, /^[A-Za-z0-9]{32,}$/, "Keycast's code format");
    const tokens = await app.exchange(code);
    assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
    assert.equal(tokens.body.token_type, 'Bearer');
    assert.equal(tokens.body.scope, 'policy:social');
    assert.equal(tokens.body.policy.slug, 'social');
    assert.match(tokens.body.authorization_handle, /^[0-9a-f]{64}$/);
    assert.ok(tokens.body.expires_in > 0 && tokens.body.refresh_token && tokens.body.access_token);

    const signer = await signerFor(tokens.body.bunker_url);
    await within(5000, signer.connect(), 'connect');
    assert.equal(await within(5000, signer.getPublicKey(), 'get_public_key'), user.pubkey);
    const note = await within(
      5000,
      signer.signEvent({ kind: 1, content: 'from a keycast app', tags: [], created_at: Math.floor(Date.now() / 1000) }),
      'sign_event',
    );
    assert.equal(note.pubkey, user.pubkey);
    assert.ok(verifyEvent(note));
    // Keycast's social allows private messages: kind 4 and NIP-44.
    const dm = await within(5000, signer.signEvent({ kind: 4, content: 'x', tags: [], created_at: 1 }), 'sign kind 4');
    assert.ok(verifyEvent(dm));
    const peer = generateSecretKey();
    recordSecret(bytesToHex(peer));
    const ct = await within(5000, signer.nip44Encrypt(getPublicKey(peer), 'hello'), 'nip44_encrypt');
    assert.equal(nip44.decrypt(ct, nip44.getConversationKey(peer, user.pubkey)), 'hello');
    await assert.rejects(
      within(5000, signer.signEvent({ kind: 6, content: '', tags: [], created_at: 1 }), 'kind 6'),
      /denied by policy/,
    );
  });

  it('grants social, never full, when the app names no scope, and takes a token request without grant_type', async () => {
    const user = await registerUser(base);
    const app = new KeycastApp(base, 'no-scope-app');
    const url = new URL(app.authorizationUrl());
    url.searchParams.delete('scope');
    const consent = await browse(url.toString(), user.session);
    assert.equal(consent.status, 200);
    assert.match(await consent.text(), /id="policy-name">Social</);
    const code = await approve(app, user.session, { scope: undefined });
    const tokens = await app.exchange(code, { grant_type: undefined });
    assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
    assert.equal(tokens.body.scope, 'policy:social');
    const full = await rpc(base, tokens.body.access_token, 'sign_event', [
      { kind: 30023, content: 'x', tags: [], created_at: 1 },
    ]);
    assert.equal(full.status, 403, 'an app that named no scope cannot sign what only full allows');
  });

  it('skips consent for the handle of this app, and the new bunker URL works with a new client on the same authorization', async () => {
    const user = await registerUser(base);
    const app = new KeycastApp(base, 'silent-app');
    app.authorizationUrl();
    const first = await app.exchange(await approve(app, user.session));
    assert.equal(first.status, 200);
    const firstSigner = await signerFor(first.body.bunker_url);
    await within(5000, firstSigner.connect(), 'first connect');

    const silent = await browse(
      app.authorizationUrl({ authorizationHandle: first.body.authorization_handle, extra: { state: 'st-1' } }),
      user.session,
    );
    assert.equal(silent.status, 302, 'no consent page');
    const location = silent.headers.get('location')!;
    assert.ok(location.startsWith(REDIRECT));
    assert.equal(new URL(location).searchParams.get('state'), 'st-1');
    const second = await app.exchange(app.codeOf(location));
    assert.equal(second.status, 200, JSON.stringify(second.body));
    assert.notEqual(second.body.authorization_handle, first.body.authorization_handle);

    const bunkerOf = (u: string) => u.slice('bunker://'.length, 'bunker://'.length + 64);
    assert.equal(bunkerOf(second.body.bunker_url), bunkerOf(first.body.bunker_url), 'the same bunker key');
    const list = await authorizations(user.session);
    assert.equal(list.filter((a) => a.revoked_at === null).length, 1, 'one authorization, not two');

    // The app's new connection binds with the new secret and signs.
    const secondSigner = await signerFor(second.body.bunker_url);
    await within(5000, secondSigner.connect(), 'connect after re-authorization');
    const signed = await within(
      5000,
      secondSigner.signEvent({ kind: 1, content: 'again', tags: [], created_at: 1 }),
      'sign after re-authorization',
    );
    assert.ok(verifyEvent(signed));

    // The handle it replaced no longer skips consent; prompt=consent always shows it.
    assert.equal(
      (await browse(app.authorizationUrl({ authorizationHandle: first.body.authorization_handle }), user.session))
        .status,
      200,
    );
    assert.equal(
      (
        await browse(
          app.authorizationUrl({ authorizationHandle: second.body.authorization_handle, extra: { prompt: 'consent' } }),
          user.session,
        )
      ).status,
      200,
    );

    // A refresh answers with a new handle too; the one before it stops.
    const refreshed = await call<KeycastTokens>(base, 'POST', '/api/oauth/token', {
      grant_type: 'refresh_token',
      refresh_token: second.body.refresh_token,
    });
    assert.equal(refreshed.status, 200);
    recordSecret(refreshed.body.access_token);
    recordSecret(refreshed.body.refresh_token);
    recordSecret(refreshed.body.authorization_handle);
    assert.match(refreshed.body.authorization_handle, /^[0-9a-f]{64}$/);
    assert.equal(
      (await browse(app.authorizationUrl({ authorizationHandle: second.body.authorization_handle }), user.session))
        .status,
      200,
    );
    assert.equal(
      (await browse(app.authorizationUrl({ authorizationHandle: refreshed.body.authorization_handle }), user.session))
        .status,
      302,
    );
  });

  it('refuses a handle replayed by another app, another origin or another user, a broader scope and a revoked authorization', async () => {
    const user = await registerUser(base);
    const app = new KeycastApp(base, 'victim-app');
    app.authorizationUrl();
    const tokens = await app.exchange(await approve(app, user.session));
    const handle = tokens.body.authorization_handle;

    const otherClient = new KeycastApp(base, 'thief-app');
    assert.equal(
      (await browse(otherClient.authorizationUrl({ authorizationHandle: handle }), user.session)).status,
      200,
      'another client_id gets consent',
    );
    const otherOrigin = new KeycastApp(base, 'victim-app', 'http://localhost:9/keycast/callback');
    assert.equal(
      (await browse(otherOrigin.authorizationUrl({ authorizationHandle: handle }), user.session)).status,
      200,
      'another redirect origin gets consent',
    );
    const stranger = await registerUser(base);
    assert.equal(
      (await browse(app.authorizationUrl({ authorizationHandle: handle }), stranger.session)).status,
      200,
      'another user gets consent',
    );
    const anonymous = await browse(app.authorizationUrl({ authorizationHandle: handle }));
    assert.equal(anonymous.status, 200);
    assert.match(await anonymous.text(), /Log in/);

    // Asking for more with a handle yields only what the user granted.
    const broader = await browse(
      app.authorizationUrl({ authorizationHandle: handle, scopes: ['policy:full'] }),
      user.session,
    );
    assert.equal(broader.status, 302);
    const narrowed = await app.exchange(app.codeOf(broader.headers.get('location')!));
    assert.equal(narrowed.body.scope, 'policy:social');

    const [live] = (await authorizations(user.session)).filter((a) => a.revoked_at === null);
    assert.equal(
      (
        await call(
          base,
          'POST',
          '/api/user/sessions/revoke',
          { authorization_id: live!.authorization_id },
          user.session,
        )
      ).status,
      200,
    );
    const afterRevoke = await browse(
      app.authorizationUrl({ authorizationHandle: narrowed.body.authorization_handle }),
      user.session,
    );
    assert.equal(afterRevoke.status, 200, "a revoked authorization's handle shows consent");
    // Consent again after the revocation: a new authorization, the revoked one stays revoked.
    const fresh = await app.exchange(await approve(app, user.session));
    assert.equal(fresh.status, 200);
    const list = await authorizations(user.session);
    assert.equal(list.length, 2);
    assert.equal(list.filter((a) => a.revoked_at === null).length, 1);
  });

  it('shows consent again once a handle is past its 30 days', async () => {
    const user = await registerUser(base);
    const app = new KeycastApp(base, 'expiring-app');
    app.authorizationUrl();
    const tokens = await app.exchange(await approve(app, user.session));
    const { rows } = await farm.rt.db.query<{ days: number }>(
      `SELECT round(extract(epoch FROM handle_expires_at - now()) / 86400)::int AS days FROM authorizations WHERE client_id = 'expiring-app'`,
    );
    assert.equal(rows[0]!.days, 30);
    await farm.rt.db.query(
      `UPDATE authorizations SET handle_expires_at = now() - interval '1 second' WHERE client_id = 'expiring-app'`,
    );
    assert.equal(
      (await browse(app.authorizationUrl({ authorizationHandle: tokens.body.authorization_handle }), user.session))
        .status,
      200,
    );
  });

  it("re-consent updates the app's authorization to the policy granted now, with the same bunker key", async () => {
    const user = await registerUser(base);
    const app = new KeycastApp(base, 'reconsent-app');
    app.authorizationUrl();
    const first = await app.exchange(await approve(app, user.session, { scope: 'policy:full' }));
    app.authorizationUrl();
    const second = await app.exchange(await approve(app, user.session, { scope: 'policy:readonly' }));
    assert.equal(second.body.scope, 'policy:readonly');
    const list = await authorizations(user.session);
    assert.equal(list.length, 1);
    assert.equal(list[0]!.policy, 'readonly');
    assert.equal(second.body.bunker_url.slice(0, 73), first.body.bunker_url.slice(0, 73));
    // The earlier token acts under the narrowed policy now.
    const denied = await rpc(base, first.body.access_token, 'sign_event', [
      { kind: 1, content: 'x', tags: [], created_at: 1 },
    ]);
    assert.equal(denied.status, 403);
  });

  describe('bring your own key', () => {
    function appKey() {
      const sk = generateSecretKey();
      const nsec = nip19.nsecEncode(sk);
      recordSecret(nsec);
      recordSecret(bytesToHex(sk));
      const verifier = `${randomBytes(32).toString('base64url')}.${nsec}`;
      recordSecret(verifier);
      return { sk, nsec, pubkey: getPublicKey(sk), verifier };
    }

    function registration(app: KeycastApp, pubkey: string) {
      const email = `byok-${Date.now()}-${randomBytes(4).toString('hex')}@example.com`;
      const password = recordSecret(`byok-pw-${randomBytes(8).toString('hex')}`);
      return {
        email,
        password,
        pubkey,
        client_id: app.clientId,
        redirect_uri: app.redirectUri,
        scope: 'policy:social',
        code_challenge: app.pkce.challenge,
        code_challenge_method: 'S256',
        state: 'byok',
      };
    }

    it('shows a register form for byok_pubkey and imports the key from the verifier at token exchange', async () => {
      const key = appKey();
      const app = new KeycastApp(base, 'byok-app');
      const someoneSignedIn = await registerUser(base);
      const page = await browse(
        app.authorizationUrl({ byokPubkey: key.pubkey, verifier: key.verifier }),
        someoneSignedIn.session,
      );
      assert.equal(page.status, 200);
      const text = await page.text();
      assert.ok(text.includes(nip19.npubEncode(key.pubkey)), "the page names the app's key");
      assert.match(text, /action="\/api\/oauth\/register"/);
      assert.ok(!text.includes(key.nsec));

      const form = registration(app, key.pubkey);
      const registered = await call(base, 'POST', '/api/oauth/register', form);
      assert.equal(registered.status, 200, JSON.stringify(registered.body));
      const tokens = await app.exchange(recordSecret(registered.body.code as string));
      assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
      assert.ok(!JSON.stringify(tokens.body).includes(key.nsec));

      const login = await call(base, 'POST', '/api/auth/login', { email: form.email, password: form.password });
      assert.equal(login.status, 200);
      recordSecret(login.body.token);
      const account = await call(base, 'GET', '/api/user/account', undefined, login.body.token);
      assert.equal(account.body.pubkey, key.pubkey, "the account has the app's key");
      const signed = await rpc(base, tokens.body.access_token, 'sign_event', [
        { kind: 1, content: 'byok', tags: [], created_at: 1 },
      ]);
      assert.equal(signed.status, 200);
      assert.equal(signed.body.result.pubkey, key.pubkey);
    });

    it("refuses a verifier whose nsec is not byok_pubkey's, and creates no account", async () => {
      const victim = appKey();
      const attacker = appKey();
      const app = new KeycastApp(base, 'byok-attack');
      // The attacker registers the victim's public key but exchanges with its own secret key.
      app.authorizationUrl({ byokPubkey: victim.pubkey, verifier: attacker.verifier });
      const form = registration(app, victim.pubkey);
      const registered = await call(base, 'POST', '/api/oauth/register', form);
      assert.equal(registered.status, 200);
      const tokens = await app.exchange(recordSecret(registered.body.code as string));
      assert.equal(tokens.status, 400);
      assert.equal((tokens.body as unknown as { error: string }).error, 'invalid_grant');
      assert.match(JSON.stringify(tokens.body), /does not match byok_pubkey/);
      assert.ok(!JSON.stringify(tokens.body).includes(attacker.nsec));
      assert.equal(
        (await call(base, 'POST', '/api/auth/login', { email: form.email, password: form.password })).status,
        401,
        'no account was made',
      );

      // A verifier with no key at all is refused the same way.
      const plain = new KeycastApp(base, 'byok-plain');
      plain.authorizationUrl();
      const form2 = registration(plain, victim.pubkey);
      const code2 = (await call(base, 'POST', '/api/oauth/register', form2)).body.code as string;
      const refused = await plain.exchange(recordSecret(code2));
      assert.equal(refused.status, 400);
      assert.equal(
        (await call(base, 'POST', '/api/auth/login', { email: form2.email, password: form2.password })).status,
        401,
      );
    });

    it('takes the register form with its CSRF token, keeps the email after an error, and refuses it without the token', async () => {
      const key = appKey();
      const app = new KeycastApp(base, 'byok-form');
      const page = await browse(
        app.authorizationUrl({ byokPubkey: key.pubkey, verifier: key.verifier, extra: { state: 'form-st' } }),
      );
      const html = await page.text();
      const csrfCookie = /^(keyfarm_csrf=[^;]+)/.exec(page.headers.get('set-cookie') ?? '')?.[1];
      const token = /name="_csrf" value="([^"]+)"/.exec(html)?.[1];
      assert.ok(csrfCookie && token, 'a form token on the register page');
      const fields = Object.fromEntries(
        [...html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)].map((m) => [
          m[1]!,
          m[2]!.replace(/&amp;/g, '&'),
        ]),
      );
      const post = (body: Record<string, string>, cookie = csrfCookie) =>
        fetch(`${base}/api/oauth/register`, {
          method: 'POST',
          redirect: 'manual',
          headers: { 'content-type': 'application/x-www-form-urlencoded', cookie },
          body: new URLSearchParams(body).toString(),
        });
      const email = `byok-form-${Date.now()}@example.com`;
      const password = recordSecret(`byok-form-pw-${randomBytes(8).toString('hex')}`);

      const forged = await post({ ...fields, _csrf: 'forged', email, password });
      assert.equal(forged.status, 403, 'no registration without the form token');
      const short = await post({ ...fields, email, password: 'short' });
      assert.equal(short.status, 400);
      const shortHtml = await short.text();
      assert.ok(shortHtml.includes(`value="${email}"`), 'the email is kept');
      assert.match(shortHtml, /at least 8 characters/);

      const done = await post({ ...fields, email, password });
      assert.equal(done.status, 303);
      const location = done.headers.get('location')!;
      assert.equal(new URL(location).searchParams.get('state'), 'form-st');
      const tokens = await app.exchange(app.codeOf(location));
      assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
      assert.equal((await rpc(base, tokens.body.access_token, 'get_public_key')).body.result, key.pubkey);
    });

    it('refuses a registration for a key already registered, or without PKCE', async () => {
      const owner = await registerUser(base);
      const app = new KeycastApp(base, 'byok-taken');
      app.authorizationUrl();
      const taken = await call(base, 'POST', '/api/oauth/register', registration(app, owner.pubkey));
      assert.equal(taken.status, 409);
      const key = appKey();
      const { code_challenge: _c, ...noPkce } = registration(app, key.pubkey);
      assert.equal((await call(base, 'POST', '/api/oauth/register', noPkce)).status, 400);
      assert.equal(
        (await browse(app.authorizationUrl({ byokPubkey: 'not-a-key' }))).status,
        302,
        'a bad byok_pubkey goes back to the app as an error',
      );
    });
  });

  describe('polling', () => {
    it('answers 202 pending, then the code once, for a PKCE-bound state', async () => {
      const user = await registerUser(base);
      const app = new KeycastApp(base, 'poll-app');
      app.authorizationUrl();
      const state = `poll-${randomBytes(16).toString('hex')}`;
      const pending = await call(base, 'GET', `/api/oauth/poll?state=${state}`);
      assert.equal(pending.status, 202);
      assert.deepEqual(pending.body, { status: 'pending' });
      await approve(app, user.session, { state });
      const ready = await call(base, 'GET', `/api/oauth/poll?state=${state}`);
      assert.equal(ready.status, 200);
      assert.match(ready.body.code, /^[A-Za-z0-9]{43}$/, 'a polled code has the format of every code');
      recordSecret(ready.body.code);
      assert.equal((await call(base, 'GET', `/api/oauth/poll?state=${state}`)).status, 202, 'once');
      const tokens = await app.exchange(ready.body.code);
      assert.equal(tokens.status, 200);
    });

    it('never hands out a code that has no PKCE challenge: the state alone is no credential', async () => {
      const user = await registerUser(base);
      const state = `nopkce-${randomBytes(16).toString('hex')}`;
      const res = await call(
        base,
        'POST',
        '/api/oauth/authorize',
        {
          client_id: 'poll-nopkce',
          redirect_uri: REDIRECT,
          approved: true,
          state,
        },
        user.session,
      );
      assert.equal(res.status, 200);
      recordSecret(res.body.code);
      assert.equal((await call(base, 'GET', `/api/oauth/poll?state=${state}`)).status, 202);
      assert.equal((await call(base, 'GET', `/api/oauth/poll?state=${'x'.repeat(1025)}`)).status, 400);
      assert.equal((await call(base, 'GET', '/api/oauth/poll')).status, 400);
    });
  });

  describe('a client polling too often', () => {
    let limited: TestFarm;
    before(async () => {
      limited = await startTestFarm(
        'keycast-poll-limit',
        { RATE_LIMIT_OAUTH_POLL: '3/1m', RATE_LIMIT_ALLOWLIST: '' },
        { api: true },
      );
    });
    after(async () => limited?.stop());

    it('gets 429 past RATE_LIMIT_OAUTH_POLL', async () => {
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++)
        statuses.push((await call(limited.url, 'GET', `/api/oauth/poll?state=flood-${i}`)).status);
      assert.deepEqual(statuses, [202, 202, 202, 429, 429]);
    });
  });
});
