// A NUL character (U+0000) in free text, which PostgreSQL text refuses (SQLSTATE 22021), sent to JSON
// routes and page forms: each answers 400 with a clear message and stores nothing; in query strings it
// is never a 500. And the
// errors the handler sorts: a NUL that reaches PostgreSQL anyway is bad input (400), a backend the server
// killed is "database unavailable" (503), both recognised by pg's error class and SQLSTATE.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import pg from 'pg';
import {
  REFUSED_CHARACTER_MESSAGE,
  dependencyDown,
  isRefusedCharacter,
  unavailableDependency,
} from '../../api/errors.js';
import { call, registerUser } from '../support/client.js';
import { databaseUrl } from '../support/env.js';
import { startTestFarm, type TestFarm } from '../support/farm.js';

const NUL = '\u0000';
const CSRF_COOKIE = 'keyfarm_csrf';

describe('NUL characters in free text', () => {
  let farm: TestFarm;
  let base: string;

  before(async () => {
    farm = await startTestFarm('nul-input', { BUNKER_RELAYS: 'wss://relay.example' }, { api: true });
    base = farm.url;
  });
  after(async () => farm?.stop());

  const count = async (sql: string, params: unknown[] = []) =>
    Number((await farm.rt.db.query<{ n: string }>(sql, params)).rows[0]!.n);
  const userCount = () => count('SELECT count(*) AS n FROM users');
  const authorizationCount = (email: string) =>
    count('SELECT count(*) AS n FROM authorizations a JOIN users u ON u.id = a.user_id WHERE u.email = $1', [email]);

  it('JSON bodies: 400 with the reason, and nothing stored', async () => {
    const users = await userCount();
    const register = await call(base, 'POST', '/api/auth/register', {
      email: `nul${NUL}@example.com`,
      password: 'a long enough password',
    });
    assert.equal(register.status, 400);
    assert.deepEqual(register.body, { error: REFUSED_CHARACTER_MESSAGE });
    const login = await call(base, 'POST', '/api/auth/login', { email: `nul${NUL}@example.com`, password: 'x' });
    assert.equal(login.status, 400);
    // Refused at the door, even in a field that would never reach a text column (a password is hashed).
    const password = await call(base, 'POST', '/api/auth/register', {
      email: `nul-password-${Date.now()}@example.com`,
      password: `long enough${NUL}`,
    });
    assert.equal(password.status, 400);
    assert.deepEqual(password.body, { error: REFUSED_CHARACTER_MESSAGE });
    assert.equal(await userCount(), users);

    const user = await registerUser(base);
    const bunker = await call(base, 'POST', '/api/user/bunker/create', { app_name: `My${NUL}App` }, user.session);
    assert.equal(bunker.status, 400);
    assert.deepEqual(bunker.body, { error: REFUSED_CHARACTER_MESSAGE });
    const consent = await call(
      base,
      'POST',
      '/api/oauth/authorize',
      { client_id: `app${NUL}`, redirect_uri: 'http://127.0.0.1:9/cb', approved: true },
      user.session,
    );
    assert.equal(consent.status, 400);
    const token = await call(base, 'POST', '/api/oauth/token', {
      grant_type: 'authorization_code',
      code: `c${NUL}`,
      client_id: 'app',
      redirect_uri: 'http://127.0.0.1:9/cb',
      code_verifier: 'v'.repeat(43),
    });
    assert.equal(token.status, 400);
    assert.equal(await authorizationCount(user.email), 0);
    // The same request without the NUL goes through: the refusal is about the character only.
    const fine = await call(base, 'POST', '/api/user/bunker/create', { app_name: 'My App' }, user.session);
    assert.equal(fine.status, 201, JSON.stringify(fine.body));
  });

  it('query strings, which reach no text column, answer without a 500', async () => {
    const poll = await call(base, 'GET', `/api/oauth/poll?state=${encodeURIComponent(`s${NUL}`)}`);
    assert.equal(poll.status, 202);
    const names = await call(base, 'GET', `/.well-known/nostr.json?name=${encodeURIComponent(`a${NUL}b`)}`);
    assert.equal(names.status, 200);
    assert.deepEqual(names.body.names, {});
    const authorize = await fetch(
      `${base}/api/oauth/authorize?response_type=code&client_id=${encodeURIComponent(`app${NUL}`)}&redirect_uri=http://127.0.0.1:9/cb`,
      { redirect: 'manual' },
    );
    assert.ok(authorize.status < 500, `authorize: ${authorize.status}`);
  });

  it('page forms: a 400 page that says why, and nothing stored', async () => {
    const user = await registerUser(base);
    const session = `keyfarm_session=${user.session}`;
    const page = await fetch(`${base}/account/bunker`, { headers: { cookie: session } });
    const html = await page.text();
    const csrfCookie = new RegExp(`(${CSRF_COOKIE}=[^;]+)`).exec(page.headers.get('set-cookie') ?? '')?.[1];
    const csrf = /name="_csrf" value="([^"]+)"/.exec(html)?.[1];
    assert.ok(csrfCookie && csrf, 'a form token');
    const post = (fields: Record<string, string>) =>
      fetch(`${base}/account/bunker`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: `${session}; ${csrfCookie}` },
        body: new URLSearchParams({ ...fields, _csrf: csrf }).toString(),
        redirect: 'manual',
      });
    const refused = await post({ app_name: `Phone${NUL}`, policy_slug: 'social' });
    assert.equal(refused.status, 400);
    assert.match(refused.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(await refused.text(), new RegExp(REFUSED_CHARACTER_MESSAGE));
    const login = await fetch(`${base}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: csrfCookie },
      body: new URLSearchParams({ email: `a${NUL}@example.com`, password: 'x', _csrf: csrf }).toString(),
      redirect: 'manual',
    });
    assert.equal(login.status, 400);
    assert.equal(await authorizationCount(user.email), 0);
    const accepted = await post({ app_name: 'Phone', policy_slug: 'social' });
    assert.equal(accepted.status, 303);
    assert.equal(await authorizationCount(user.email), 1);
  });
});

describe('errors recognised by class and code', () => {
  it('a NUL that reaches PostgreSQL is bad input (SQLSTATE 22021), not a dependency failure', async () => {
    const client = new pg.Client({ connectionString: databaseUrl() });
    await client.connect();
    try {
      const err = await client.query('SELECT $1::text AS t', [`a${NUL}b`]).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof pg.DatabaseError, 'a real error of the server');
      assert.equal(err.code, '22021');
      assert.ok(isRefusedCharacter(err));
      assert.equal(unavailableDependency(err), undefined);
    } finally {
      await client.end();
    }
  });

  it('a backend the server terminated is "database unavailable" (SQLSTATE 57P01)', async () => {
    const victim = new pg.Client({ connectionString: databaseUrl() });
    victim.on('error', () => undefined);
    await victim.connect();
    const admin = new pg.Client({ connectionString: databaseUrl() });
    await admin.connect();
    try {
      const pid = (await victim.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      const sleeping = victim.query('SELECT pg_sleep(30)').then(
        () => undefined,
        (e: unknown) => e,
      );
      await admin.query('SELECT pg_terminate_backend($1)', [pid]);
      const err = await sleeping;
      assert.ok(err instanceof pg.DatabaseError);
      assert.equal(err.code, '57P01');
      assert.equal(unavailableDependency(err), 'database');
      assert.equal(isRefusedCharacter(err), false);
    } finally {
      await admin.end();
      await victim.end().catch(() => undefined);
    }
  });

  it("ioredis's plain errors of a closed connection: redis is down by the connection's state, not by the text", async () => {
    const redis = new Redis('redis://127.0.0.1:1', {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    redis.on('error', () => undefined);
    const err = await redis.get('k').then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof Error);
    assert.equal(unavailableDependency(err), undefined, 'the error alone says nothing');
    assert.equal(
      await dependencyDown(err, { redisUp: () => redis.status === 'ready', databaseUp: async () => true }),
      'redis',
    );
    assert.equal(await dependencyDown(err, { redisUp: () => true, databaseUp: async () => false }), 'database');
    assert.equal(
      await dependencyDown(err, { redisUp: () => true, databaseUp: async () => true }),
      undefined,
      'both up: a 500',
    );
    redis.disconnect();
  });
});
