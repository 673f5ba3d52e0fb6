// The whole HTTP contract on real Redis and PostgreSQL: accounts, authorizations, OAuth, every RPC method,
// a policy denial, revocation and refresh rotation.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import { schnorr } from '@noble/curves/secp256k1.js';
import { generateSecretKey, getPublicKey, nip04, nip19, nip44, verifyEvent } from 'nostr-tools';
import { authorizeApp, call, registerUser, rpc } from '../support/client.js';
import { startTestFarm, type TestFarm } from '../support/farm.js';
import { recordSecret } from '../support/logs.js';

describe('HTTP API end to end', () => {
  let farm: TestFarm;
  let base: string;

  before(async () => {
    farm = await startTestFarm('api-flow');
    base = farm.url;
  });
  after(async () => farm?.stop());

  describe('accounts', () => {
    it('registers with a generated key, then logs in and reads the account by bearer and by cookie', async () => {
      const user = await registerUser(base);
      assert.match(user.pubkey, /^[0-9a-f]{64}$/);
      const login = await call(base, 'POST', '/api/auth/login', { email: user.email, password: user.password });
      assert.equal(login.status, 200);
      assert.equal(login.body.pubkey, user.pubkey);
      recordSecret(login.body.token);
      const cookie = login.headers.get('set-cookie') ?? '';
      assert.match(cookie, /keyfarm_session=.*HttpOnly/i);
      const byBearer = await call(base, 'GET', '/api/user/account', undefined, login.body.token);
      assert.deepEqual(byBearer.body, {
        email: user.email,
        email_verified: false,
        pubkey: user.pubkey,
        public_key: user.pubkey,
        npub: nip19.npubEncode(user.pubkey),
      });
      const byCookie = await call(base, 'GET', '/api/user/account', undefined, undefined, {
        cookie: cookie.split(';')[0]!,
      });
      assert.equal(byCookie.status, 200);
      assert.equal(byCookie.body.pubkey, user.pubkey);
    });

    it('imports an nsec or a hex secret and derives its pubkey', async () => {
      const sk = generateSecretKey();
      recordSecret(bytesToHex(sk));
      const viaNsec = await registerUser(base, { nsec: nip19.nsecEncode(sk) });
      assert.equal(viaNsec.pubkey, getPublicKey(sk));
      const sk2 = generateSecretKey();
      const viaHex = await registerUser(base, { nsec: bytesToHex(sk2) });
      assert.equal(viaHex.pubkey, getPublicKey(sk2));
      const again = await call(base, 'POST', '/api/auth/register', {
        email: `dup-${Date.now()}@example.com`,
        password: 'long enough pw',
        nsec: bytesToHex(sk2),
      });
      assert.equal(again.status, 409);
    });

    it('refuses a taken email (409), a weak password and a bad key (400), and never echoes secrets', async () => {
      const user = await registerUser(base);
      const taken = await call(base, 'POST', '/api/auth/register', {
        email: user.email.toUpperCase(),
        password: 'another password',
      });
      assert.equal(taken.status, 409);
      const weak = await call(base, 'POST', '/api/auth/register', {
        email: `w${Date.now()}@example.com`,
        password: 'short',
      });
      assert.equal(weak.status, 400);
      const badKey = `nsec1${'q'.repeat(58)}`;
      const bad = await call(base, 'POST', '/api/auth/register', {
        email: `b${Date.now()}@example.com`,
        password: 'long enough pw',
        nsec: badKey,
      });
      assert.equal(bad.status, 400);
      assert.ok(!JSON.stringify(bad.body).includes(badKey));
      const zero = await call(base, 'POST', '/api/auth/register', {
        email: `z${Date.now()}@example.com`,
        password: 'long enough pw',
        nsec: '0'.repeat(64),
      });
      assert.equal(zero.status, 400);
    });

    it('answers 401 to a wrong password and 429 once an account has failed too often', async () => {
      const user = await registerUser(base);
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++) {
        const res = await call(base, 'POST', '/api/auth/login', { email: user.email, password: 'wrong password!' });
        statuses.push(res.status);
      }
      assert.deepEqual(statuses.slice(0, 5), [401, 401, 401, 401, 401]);
      assert.equal(statuses[5], 429);
      const right = await call(base, 'POST', '/api/auth/login', { email: user.email, password: user.password });
      assert.equal(right.status, 429, 'the account stays locked for the window, even with the right password');
      assert.ok(Number(right.headers.get('retry-after')) > 0);
    });

    it('logs out: the session stops working', async () => {
      const user = await registerUser(base);
      assert.equal((await call(base, 'POST', '/api/auth/logout', undefined, user.session)).status, 200);
      assert.equal((await call(base, 'GET', '/api/user/account', undefined, user.session)).status, 401);
    });
  });

  describe('authorizations', () => {
    it('lists the five built-in policies', async () => {
      const res = await call(base, 'GET', '/api/policies');
      assert.deepEqual(
        res.body.map((p: { slug: string }) => p.slug),
        ['social', 'readonly', 'messaging', 'wallet', 'full'],
      );
    });

    it('creates a bunker connection, lists it, and revokes it by bunker pubkey', async () => {
      const user = await registerUser(base);
      const created = await call(
        base,
        'POST',
        '/api/user/bunker/create',
        { app_name: 'My client', policy_slug: 'social', relays: ['wss://relay.example.com'] },
        user.session,
      );
      assert.equal(created.status, 201);
      const url = new URL(created.body.bunker_url);
      assert.equal(url.protocol, 'bunker:');
      assert.equal(url.host, created.body.bunker_pubkey);
      assert.deepEqual(url.searchParams.getAll('relay'), ['wss://relay.example.com']);
      assert.match(url.searchParams.get('secret') ?? '', /^[0-9a-f]{64}$/);
      recordSecret(url.searchParams.get('secret')!);
      const list = await call(base, 'GET', '/api/user/sessions', undefined, user.session);
      assert.equal(list.body.length, 1);
      assert.equal(list.body[0].application_name, 'My client');
      assert.equal(list.body[0].policy, 'social');
      assert.equal(list.body[0].revoked_at, null);
      const revoked = await call(
        base,
        'POST',
        '/api/user/sessions/revoke',
        { bunker_pubkey: created.body.bunker_pubkey },
        user.session,
      );
      assert.equal(revoked.status, 200);
      const after = await call(base, 'GET', '/api/user/sessions', undefined, user.session);
      assert.notEqual(after.body[0].revoked_at, null);
      const other = await registerUser(base);
      const notTheirs = await call(
        base,
        'POST',
        '/api/user/sessions/revoke',
        { authorization_id: created.body.authorization_id },
        other.session,
      );
      assert.equal(notTheirs.status, 404);
    });

    it('refuses session routes without a session and bad input with 400', async () => {
      assert.equal((await call(base, 'POST', '/api/user/bunker/create', { app_name: 'x' })).status, 401);
      const user = await registerUser(base);
      assert.equal(
        (await call(base, 'POST', '/api/user/bunker/create', { app_name: 'x', policy_slug: 'nope' }, user.session))
          .status,
        400,
      );
      assert.equal(
        (
          await call(
            base,
            'POST',
            '/api/user/bunker/create',
            { app_name: 'x', relays: ['http://not-ws'] },
            user.session,
          )
        ).status,
        400,
      );
    });
  });

  describe('OAuth', () => {
    it('exchanges a code once, with the right PKCE verifier only', async () => {
      const user = await registerUser(base);
      const granted = await authorizeApp(base, user.session, 'messaging');
      assert.equal(granted.policy.slug, 'messaging');
      assert.equal(granted.scope, 'policy:messaging');
      assert.match(granted.bunker_url, /^bunker:\/\/[0-9a-f]{64}/);
      const replay = await call(base, 'POST', '/api/oauth/token', {
        grant_type: 'authorization_code',
        code: granted.code,
        client_id: granted.clientId,
        redirect_uri: granted.redirectUri,
        code_verifier: granted.verifier,
      });
      assert.equal(replay.status, 400);
      assert.equal(replay.body.error, 'invalid_grant');

      const auth = await call(
        base,
        'POST',
        '/api/oauth/authorize',
        {
          client_id: 'a',
          redirect_uri: 'https://app.example.com/cb',
          scope: 'policy:full',
          approved: true,
          code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
          code_challenge_method: 'S256',
        },
        user.session,
      );
      recordSecret(auth.body.code);
      const wrong = await call(base, 'POST', '/api/oauth/token', {
        grant_type: 'authorization_code',
        code: auth.body.code,
        client_id: 'a',
        redirect_uri: 'https://app.example.com/cb',
        code_verifier: 'x'.repeat(43),
      });
      assert.equal(wrong.body.error, 'invalid_grant');
    });

    it('refuses bad redirect URIs, denial gives access_denied, and authorize needs a session', async () => {
      const user = await registerUser(base);
      const body = { client_id: 'a', redirect_uri: 'http://evil.example.com/cb', scope: 'policy:full', approved: true };
      const bad = await call(base, 'POST', '/api/oauth/authorize', body, user.session);
      assert.equal(bad.status, 400);
      const denied = await call(
        base,
        'POST',
        '/api/oauth/authorize',
        { ...body, redirect_uri: 'https://ok.example.com/cb', approved: false, state: 's1' },
        user.session,
      );
      assert.equal(denied.body.error, 'access_denied');
      assert.match(denied.body.redirect_uri, /error=access_denied&state=s1/);
      assert.equal((await call(base, 'POST', '/api/oauth/authorize', body)).status, 401);
    });

    it('rotates refresh tokens; a reused one kills the family', async () => {
      const user = await registerUser(base);
      const first = await authorizeApp(base, user.session, 'full');
      const second = await call(base, 'POST', '/api/oauth/token', {
        grant_type: 'refresh_token',
        refresh_token: first.refresh_token,
      });
      assert.equal(second.status, 200);
      recordSecret(second.body.access_token);
      recordSecret(second.body.refresh_token);
      assert.notEqual(second.body.access_token, first.access_token);
      assert.equal((await rpc(base, first.access_token, 'ping')).status, 401, 'the rotated access token is dead');
      assert.equal((await rpc(base, second.body.access_token, 'ping')).status, 200);
      const reuse = await call(base, 'POST', '/api/oauth/token', {
        grant_type: 'refresh_token',
        refresh_token: first.refresh_token,
      });
      assert.equal(reuse.body.error, 'invalid_grant');
      assert.equal((await rpc(base, second.body.access_token, 'ping')).status, 401, 'the whole family is revoked');
      const third = await call(base, 'POST', '/api/oauth/token', {
        grant_type: 'refresh_token',
        refresh_token: second.body.refresh_token,
      });
      assert.equal(third.body.error, 'invalid_grant');
    });
  });

  describe('RPC', () => {
    it('answers every method of the table', async () => {
      const user = await registerUser(base);
      const { access_token: token } = await authorizeApp(base, user.session, 'full');

      assert.deepEqual((await rpc(base, token, 'ping')).body, { result: 'pong' });
      assert.deepEqual((await rpc(base, token, 'get_public_key')).body, { result: user.pubkey });

      const unsigned = {
        kind: 1,
        content: 'hello from keyfarm',
        tags: [['t', 'test']],
        created_at: Math.floor(Date.now() / 1000),
      };
      const signed = await rpc(base, token, 'sign_event', [unsigned]);
      assert.equal(signed.status, 200, JSON.stringify(signed.body));
      const ev = signed.body.result;
      assert.equal(ev.pubkey, user.pubkey);
      assert.equal(ev.content, unsigned.content);
      assert.ok(verifyEvent(ev), 'nostr-tools verifies the event');
      assert.ok(
        schnorr.verify(hexToBytes(ev.sig), hexToBytes(ev.id), hexToBytes(ev.pubkey)),
        'noble verifies the signature',
      );
      const asString = await rpc(base, token, 'sign_event', [JSON.stringify(unsigned)]);
      assert.equal(asString.status, 200, JSON.stringify(asString.body));
      assert.equal(asString.body.result.id, ev.id);

      const peerSk = generateSecretKey();
      const peerPk = getPublicKey(peerSk);
      const conv = nip44.v2.utils.getConversationKey(peerSk, user.pubkey);
      const enc44 = await rpc(base, token, 'nip44_encrypt', [peerPk, 'secret note 44']);
      assert.equal(enc44.status, 200);
      assert.equal(nip44.v2.decrypt(enc44.body.result, conv), 'secret note 44');
      const fromPeer44 = nip44.v2.encrypt('reply 44', conv);
      assert.deepEqual((await rpc(base, token, 'nip44_decrypt', [peerPk, fromPeer44])).body, { result: 'reply 44' });

      const enc04 = await rpc(base, token, 'nip04_encrypt', [peerPk, 'secret note 04']);
      assert.equal(await nip04.decrypt(peerSk, user.pubkey, enc04.body.result), 'secret note 04');
      const fromPeer04 = await nip04.encrypt(peerSk, user.pubkey, 'reply 04');
      assert.deepEqual((await rpc(base, token, 'nip04_decrypt', [peerPk, fromPeer04])).body, { result: 'reply 04' });

      const badCipher = await rpc(base, token, 'nip44_decrypt', [
        peerPk,
        'AgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
      ]);
      assert.equal(badCipher.status, 400);
      assert.ok(typeof badCipher.body.error === 'string');
    });

    it('echoes x-trace-id and makes one when absent', async () => {
      const user = await registerUser(base);
      const { access_token: token } = await authorizeApp(base, user.session, 'full');
      const traced = await rpc(base, token, 'ping', [], { 'x-trace-id': 'trace-abc-123' });
      assert.equal(traced.headers.get('x-trace-id'), 'trace-abc-123');
      const made = await rpc(base, token, 'ping');
      assert.match(made.headers.get('x-trace-id') ?? '', /^[0-9a-f-]{36}$/);
    });

    it('denies by policy: kinds outside the policy, and encryption without the right', async () => {
      const user = await registerUser(base);
      const { access_token: social } = await authorizeApp(base, user.session, 'social', 'social-app');
      const note = { kind: 1, content: 'ok', tags: [], created_at: 1700000000 };
      assert.equal((await rpc(base, social, 'sign_event', [note])).status, 200);
      const repost = await rpc(base, social, 'sign_event', [{ ...note, kind: 6 }]);
      assert.equal(repost.status, 403);
      assert.deepEqual(repost.body, { error: 'Operation denied by policy' });
      const { access_token: readonly } = await authorizeApp(base, user.session, 'readonly', 'readonly-app');
      assert.equal((await rpc(base, readonly, 'sign_event', [note])).status, 403);
      assert.equal((await rpc(base, readonly, 'get_public_key')).status, 200);
      const peer = getPublicKey(generateSecretKey());
      assert.equal((await rpc(base, readonly, 'nip44_encrypt', [peer, 'x'])).status, 403);
      const { access_token: wallet } = await authorizeApp(base, user.session, 'wallet', 'wallet-app');
      assert.equal((await rpc(base, wallet, 'sign_event', [{ ...note, kind: 9734 }])).status, 200);
      assert.equal((await rpc(base, wallet, 'sign_event', [note])).status, 403);
      assert.equal((await rpc(base, wallet, 'nip04_decrypt', [peer, 'x?iv=y'])).status, 403);
    });

    it('refuses a revoked authorization with 403 from the moment revoke returns', async () => {
      const user = await registerUser(base);
      const { access_token: token } = await authorizeApp(base, user.session, 'full');
      assert.equal((await rpc(base, token, 'ping')).status, 200);
      const list = await call(base, 'GET', '/api/user/sessions', undefined, user.session);
      const id = list.body[0].authorization_id;
      assert.equal(
        (await call(base, 'POST', '/api/user/sessions/revoke', { authorization_id: id }, user.session)).status,
        200,
      );
      const refused = await rpc(base, token, 'sign_event', [{ kind: 1, content: '', tags: [], created_at: 1 }]);
      assert.equal(refused.status, 403);
    });

    it('records activity on the authorization', async () => {
      const user = await registerUser(base);
      const { access_token: token } = await authorizeApp(base, user.session, 'full');
      for (let i = 0; i < 3; i++)
        await rpc(base, token, 'sign_event', [{ kind: 1, content: `n${i}`, tags: [], created_at: 1700000000 }]);
      let row: { activity_count: number; last_activity: string | null } | undefined;
      for (let i = 0; i < 40; i++) {
        row = (await call(base, 'GET', '/api/user/sessions', undefined, user.session)).body[0];
        if (row!.activity_count >= 3) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(row!.activity_count, 3);
      assert.notEqual(row!.last_activity, null);
    });

    it('refuses missing or unknown tokens with 401 and bad params with 400', async () => {
      assert.equal((await rpc(base, '', 'ping')).status, 401);
      assert.equal((await rpc(base, 'kfa_unknown', 'ping')).status, 401);
      const user = await registerUser(base);
      const { access_token: token } = await authorizeApp(base, user.session, 'full');
      assert.equal(
        (await rpc(base, token, 'sign_event', [{ kind: -1, content: '', tags: [], created_at: 1 }])).status,
        400,
      );
      assert.equal((await rpc(base, token, 'sign_event', [])).status, 400);
      assert.equal((await rpc(base, token, 'nip44_encrypt', ['zz', 'x'])).status, 400);
      const empty = await rpc(base, token, 'nip44_encrypt', [user.pubkey, '']);
      assert.deepEqual(
        [empty.status, (empty.body as { error?: string }).error],
        [400, 'nip44_encrypt: plaintext must not be empty'],
      );
      assert.equal((await rpc(base, token, 'no_such_method')).status, 400);
    });
  });

  describe('operations', () => {
    it('reports health, readiness and metrics', async () => {
      const health = await call(base, 'GET', '/health');
      assert.deepEqual(Object.keys(health.body).sort(), ['status', 'version']);
      assert.equal(health.body.status, 'healthy');
      assert.equal((await call(base, 'GET', '/healthz/startup')).status, 200);
      const ready = await call(base, 'GET', '/healthz/ready');
      assert.equal(ready.status, 200);
      assert.deepEqual(ready.body.checks, { postgres: 'ok', redis: 'ok' });
      const metrics = await call(base, 'GET', '/api/metrics');
      for (const name of [
        'cache_hits_total',
        'cache_misses_total',
        'cache_size',
        'nip46_requests_total',
        'nip46_processed_total',
        'nip46_queue_dropped_total',
        'http_rpc_requests_total',
        'http_rpc_auth_errors_total',
        'registrations_total',
        'logins_total',
        'login_failures_total',
        'rpc_duration_seconds_bucket',
        'queue_depth',
      ]) {
        assert.match(metrics.body, new RegExp(`keyfarm_${name}`), name);
      }
    });
  });
});
