// Request limits across replicas: two api instances on one Redis and one database share every count, so
// a client spreading its requests over both still meets the limit; the allow-list exempts from the
// request limits but not from the login-failure limits; Redis keys stay short; requests that fail
// validation still count; a limit set to `off` and the routes not listed are not limited; a Redis that
// refuses the count fails the request at once, and nothing is done.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { call, type Res } from '../support/client.js';
import { startTestFarm, type TestFarm } from '../support/farm.js';
import { redisUrl, suiteRedis, scanKeys } from '../support/env.js';
import { createRedis } from '../../shared/redis.js';
import { recordSecret } from '../support/logs.js';

const ALLOWED = '203.0.113.9';
const LIMITS = {
  TRUST_PROXY: '127.0.0.1', // the test plays the proxy: X-Forwarded-For names the client
  RATE_LIMIT_ALLOWLIST: '203.0.113.0/24',
  RATE_LIMIT_REGISTER: '4/1h',
  RATE_LIMIT_LOGIN: '4/1m',
  RATE_LIMIT_OAUTH_TOKEN: '4/1m',
  RATE_LIMIT_BUNKER_CREATE: '3/1h',
  RATE_LIMIT_NOSTRCONNECT: '3/1h',
  RATE_LIMIT_OAUTH_POLL: 'off',
};

let seq = 0;
const freshIp = () => `198.19.${Math.floor(seq / 250)}.${(seq++ % 250) + 1}`;
const from = (ip: string) => ({ 'x-forwarded-for': ip });

function assertLimited(res: Res, what: string): void {
  assert.equal(res.status, 429, `${what}: ${JSON.stringify(res.body)}`);
  assert.ok(Number(res.headers.get('retry-after')) > 0, `${what}: Retry-After`);
  const message = res.body.error_description ?? res.body.error;
  assert.match(message, /too many requests; try again in \d+ (seconds?|minutes?)/, what);
}

describe('request limits shared by two api instances', () => {
  let a: TestFarm;
  let b: TestFarm;
  /** Instance A, B, A, B…: every count must be shared to hold. */
  const base = (i: number) => (i % 2 === 0 ? a.url : b.url);

  before(async () => {
    a = await startTestFarm('rate-limits-a', LIMITS, { api: true });
    b = await startTestFarm(
      'rate-limits-b',
      { ...LIMITS, DATABASE_URL: a.env.DATABASE_URL!, KEY_PREFIX: a.env.KEY_PREFIX!, DATA_DIR: a.env.DATA_DIR! },
      { api: true },
    );
  });
  after(async () => {
    await b?.stop();
    await a?.stop();
  });

  async function register(i: number, ip: string) {
    const email = `rl-${randomBytes(6).toString('hex')}@example.com`;
    const password = recordSecret(`pw-${randomBytes(12).toString('hex')}`);
    const res = await call(base(i), 'POST', '/api/auth/register', { email, password }, undefined, from(ip));
    if (res.status === 201) recordSecret(res.body.token);
    return { res, email, password, session: res.body.token as string };
  }

  /** A page form posted as a browser would: GET for the CSRF token, then POST. */
  async function postForm(baseUrl: string, path: string, fields: Record<string, string>, ip: string, cookie = '') {
    const page = await fetch(baseUrl + path, { headers: { ...from(ip), cookie } });
    const html = await page.text();
    const csrf = page.headers
      .getSetCookie()
      .map((c) => c.split(';')[0]!)
      .find((c) => c.includes('csrf'));
    const token = /name="_csrf" value="([^"]+)"/.exec(html)?.[1];
    assert.ok(csrf && token, `a form token on ${path}`);
    const res = await fetch(baseUrl + path, {
      method: 'POST',
      redirect: 'manual',
      headers: {
        ...from(ip),
        'content-type': 'application/x-www-form-urlencoded',
        cookie: [cookie, csrf].filter(Boolean).join('; '),
      },
      body: new URLSearchParams({ ...fields, _csrf: token }).toString(),
    });
    return { status: res.status, headers: res.headers, body: await res.text() };
  }

  it('limits registrations per address over both instances and both doors (JSON and page form)', async () => {
    const ip = freshIp();
    for (let i = 0; i < 3; i++) assert.equal((await register(i, ip)).res.status, 201);
    const pagePassword = recordSecret(`pw-${randomBytes(12).toString('hex')}`);
    const page = await postForm(
      b.url,
      '/register',
      { email: `rl-page-${seq}@example.com`, password: pagePassword, confirm_password: pagePassword },
      ip,
    );
    assert.equal(page.status, 303, 'the fourth, by the page form, is served');
    assertLimited((await register(0, ip)).res, 'fifth on A');
    assertLimited((await register(1, ip)).res, 'sixth on B');
    assert.equal((await register(0, freshIp())).res.status, 201, 'another address is not limited');
  });

  it('limits login requests per address over both instances, the page form included', async () => {
    const ip = freshIp();
    for (let i = 0; i < 3; i++) {
      const served = await call(
        base(i),
        'POST',
        '/api/auth/login',
        { email: `none-${i}@example.com`, password: 'wrong password' },
        undefined,
        from(ip),
      );
      assert.equal(served.status, 401);
      // A client is not told how much of its allowance is left (it would pace a guesser exactly).
      for (const h of ['x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset'])
        assert.equal(served.headers.get(h), null, h);
    }
    const page = await postForm(a.url, '/login', { email: 'none-page@example.com', password: 'wrong password' }, ip);
    assert.equal(page.status, 401);
    const limited = await call(
      b.url,
      'POST',
      '/api/auth/login',
      { email: 'none-5@example.com', password: 'wrong password' },
      undefined,
      from(ip),
    );
    assertLimited(limited, 'login on B');
    // The wait is what is left of the one-minute window, in whole seconds, and the message says the same.
    const wait = Number(limited.headers.get('retry-after'));
    assert.ok(wait > 30 && wait <= 60, `Retry-After ${wait}`);
    assert.match(limited.body.error, /try again in (1 minute|\d\d seconds)$/);
    const pageAgain = await postForm(
      a.url,
      '/login',
      { email: 'none-page@example.com', password: 'wrong password' },
      ip,
    );
    assert.equal(pageAgain.status, 429);
    assert.ok(Number(pageAgain.headers.get('retry-after')) > 0);
    assert.match(pageAgain.headers.get('content-type') ?? '', /text\/html/);
    assert.match(pageAgain.body, /too many requests; try again in \d+ (seconds?|minutes?)/, 'the page says how long');
  });

  it('limits OAuth token requests per address over both instances', async () => {
    const ip = freshIp();
    const token = (i: number) =>
      call(
        base(i),
        'POST',
        '/api/oauth/token',
        { grant_type: 'refresh_token', refresh_token: `rt-${i}` },
        undefined,
        from(ip),
      );
    for (let i = 0; i < 4; i++) assert.notEqual((await token(i)).status, 429);
    assertLimited(await token(4), 'token on A');
    assertLimited(await token(5), 'token on B');
  });

  it('limits bunker creation per user over both instances and both doors; another user is not held back', async () => {
    const alice = await register(0, ALLOWED);
    const bob = await register(1, ALLOWED);
    const create = (i: number, session: string) =>
      call(base(i), 'POST', '/api/user/bunker/create', { app_name: `rl app ${i}` }, session, from(freshIp()));
    for (let i = 0; i < 2; i++) assert.equal((await create(i, alice.session)).status, 201);
    const cookie = `keyfarm_session=${alice.session}`;
    const page = await postForm(
      a.url,
      '/account/bunker',
      { app_name: 'rl page app', policy_slug: 'full' },
      freshIp(),
      cookie,
    );
    assert.equal(page.status, 303, 'the third, by the page form, is served (a redirect to the link shown once)');
    assertLimited(await create(1, alice.session), 'fourth on B');
    assertLimited(await create(0, alice.session), 'fifth on A, from yet another address');
    assert.equal((await create(1, bob.session)).status, 201);
  });

  it('limits nostrconnect requests per user over both instances', async () => {
    const alice = await register(0, ALLOWED);
    const bob = await register(1, ALLOWED);
    const connect = (i: number, session: string) =>
      call(
        base(i),
        'POST',
        '/api/user/nostrconnect',
        { uri: 'nostrconnect://zz?relay=wss://relay.example' },
        session,
        from(freshIp()),
      );
    for (let i = 0; i < 3; i++) assert.equal((await connect(i, alice.session)).status, 400);
    assertLimited(await connect(3, alice.session), 'fourth on B');
    assert.equal((await connect(0, bob.session)).status, 400, 'another user is served');
  });

  it('exempts allow-listed clients from the request limits but not from the login-failure limits', async () => {
    const users = [];
    for (let i = 0; i < 7; i++) {
      const user = await register(i, ALLOWED);
      assert.equal(user.res.status, 201, `registration ${i + 1} from the allow-list`);
      users.push(user);
    }
    const target = users[0]!;
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) {
      statuses.push(
        (
          await call(
            base(i),
            'POST',
            '/api/auth/login',
            { email: target.email, password: `guess ${i}` },
            undefined,
            from(ALLOWED),
          )
        ).status,
      );
    }
    assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429, 429]);
  });

  it('counts requests whose body fails validation: malformed logins use up the limit too', async () => {
    const ip = freshIp();
    const raw = (i: number, body: string) =>
      fetch(`${base(i)}/api/auth/login`, {
        method: 'POST',
        headers: { ...from(ip), 'content-type': 'application/json' },
        body,
      });
    // Two bodies the schema refuses and two that are not JSON: each is answered 400, and each is counted.
    const malformed = [
      JSON.stringify({ email: 'x@example.com' }),
      JSON.stringify({ email: 'x@example.com', password: 7 }),
      '{"email":',
      'not json',
    ];
    for (const [i, body] of malformed.entries())
      assert.equal((await raw(i, body)).status, 400, `malformed body ${i + 1}`);
    const valid = await call(
      base(4),
      'POST',
      '/api/auth/login',
      { email: 'none@example.com', password: 'wrong password' },
      undefined,
      from(ip),
    );
    assertLimited(valid, 'a well-formed login after four malformed ones');
    assert.equal(
      (await raw(5, 'not json')).status,
      429,
      'a malformed one past the limit is refused before its body is read',
    );
  });

  it('applies no limit to a route whose setting is off (RATE_LIMIT_OAUTH_POLL=off), not even the default', async () => {
    const ip = freshIp();
    // One more than RATE_LIMIT_OAUTH_POLL's default (60/1m), over both instances.
    const statuses = new Set<number>();
    for (let i = 0; i < 61; i++)
      statuses.add(
        (await call(base(i), 'GET', `/api/oauth/poll?state=rl-off-${i}`, undefined, undefined, from(ip))).status,
      );
    assert.deepEqual([...statuses], [202], 'every poll is answered as pending');
  });

  it('limits no route the table does not list: 1,001 requests to /health from one address are all served', async () => {
    // @fastify/rate-limit's own default, were it applied to every route, is 1,000 a minute per address.
    const ip = freshIp();
    const statuses = new Set<number>();
    for (let batch = 0; batch < 1001; batch += 77) {
      const n = Math.min(77, 1001 - batch);
      const res = await Promise.all(
        Array.from({ length: n }, (_, j) => fetch(`${base(batch + j)}/health`, { headers: from(ip) })),
      );
      for (const r of res) {
        statuses.add(r.status);
        await r.body?.cancel();
      }
    }
    assert.deepEqual([...statuses], [200]);
  });

  it('keeps every Redis key short, whatever the client sent', async () => {
    await call(
      a.url,
      'POST',
      '/api/auth/register',
      { email: 'x@example.com', password: 'short' },
      undefined,
      from('z'.repeat(6000)),
    );
    await call(
      b.url,
      'POST',
      '/api/auth/login',
      { email: 'x@example.com', password: 'wrong password' },
      undefined,
      from(`${'1'.repeat(6000)}`),
    );
    const redis = suiteRedis();
    try {
      const keys = await scanKeys(redis, `${a.config.KEY_PREFIX}:*`);
      assert.ok(
        keys.some((k) => k.includes(':ratelimit:')),
        'request counts are in Redis',
      );
      // Under this deployment's KEY_PREFIX, by group: another farm on the same Redis keeps its own counts.
      for (const group of ['register', 'login']) {
        assert.ok(
          keys.some((k) => k.startsWith(`${a.config.KEY_PREFIX}:ratelimit:${group}:c:`)),
          `the ${group} counts under the prefix`,
        );
      }
      for (const key of keys) assert.ok(key.length <= 120, `key of ${key.length} bytes: ${key.slice(0, 80)}…`);
    } finally {
      redis.disconnect();
    }
  });
});

describe('request limits when Redis refuses the count', () => {
  // An api whose Redis user can lose the scripting commands, as a Redis that refuses them (a read-only
  // replica after a failover, an ACL change) while it still answers. The count cannot be taken.
  let farm: TestFarm;
  let admin: ReturnType<typeof createRedis>;
  const aclUser = `kf-ratelimit-${process.pid}-${Date.now()}`;

  before(async () => {
    admin = createRedis(redisUrl());
    const aclPassword = recordSecret(randomBytes(16).toString('hex'));
    await admin.call('ACL', 'SETUSER', aclUser, 'on', `>${aclPassword}`, '~*', '&*', '+@all');
    const viaUser = new URL(redisUrl());
    viaUser.username = aclUser;
    viaUser.password = aclPassword;
    farm = await startTestFarm('rate-limits-redis-down', { ...LIMITS, REDIS_URL: viaUser.toString() }, { api: true });
  });
  after(async () => {
    await farm?.stop();
    await admin.call('ACL', 'DELUSER', aclUser);
    await admin.quit();
  });

  it('fails a limited request at once (no hang, no 429) and does nothing; once Redis counts again it is served', async () => {
    const ip = freshIp();
    const email = `rl-down-${randomBytes(6).toString('hex')}@example.com`;
    const password = recordSecret(`pw-${randomBytes(12).toString('hex')}`);
    const register = () =>
      fetch(`${farm.url}/api/auth/register`, {
        method: 'POST',
        headers: { ...from(ip), 'content-type': 'application/json' },
        body: JSON.stringify({ email, password }),
        // Far longer than a refused count takes to come back; a request left waiting on it would never end.
        signal: AbortSignal.timeout(5000),
      });
    await admin.call('ACL', 'SETUSER', aclUser, '-@scripting');
    let res: Response;
    try {
      res = await register();
    } finally {
      await admin.call('ACL', 'SETUSER', aclUser, '+@all');
    }
    // The project's answer to a failure it cannot name: no Redis error text, nothing of the request.
    assert.equal(res.status, 500);
    assert.deepEqual(await res.json(), { error: 'internal error' });
    // Nothing was registered while the count could not be taken: the address is still free.
    const again = await register();
    const body = (await again.json()) as { token: string };
    assert.equal(again.status, 201, JSON.stringify(body));
    recordSecret(body.token);
  });
});
