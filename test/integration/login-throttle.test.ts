// Password guessing against the real farm: parallel guesses, spoofed and oversized X-Forwarded-For, the
// owner locked out by an attacker, the operators' shared counter, and the wait shown to the user.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { call, registerUser } from '../support/client.js';
import { startTestFarm, type TestFarm } from '../support/farm.js';
import { LoginLimiter } from '../../api/services/login-limiter.js';
import { testKeyPrefix, suiteRedis, scanKeys } from '../support/env.js';
import type { RedisClient } from '../../shared/redis.js';

let seq = 0;
/** A documentation-range address (198.18.0.0/15) no other test uses. */
const freshIp = () => `198.18.${Math.floor(seq / 250)}.${(seq++ % 250) + 1}`;
const unknownEmail = () => `nobody-${randomBytes(6).toString('hex')}@example.com`;

function login(base: string, email: string, password: string, xff?: string) {
  return call(
    base,
    'POST',
    '/api/auth/login',
    { email, password },
    undefined,
    xff === undefined ? {} : { 'x-forwarded-for': xff },
  );
}

/** keyfarm_login_failures_total{reason="bad_credentials"}: one per password check that ran and failed. */
async function failedChecks(base: string): Promise<number> {
  const text = await (await fetch(`${base}/api/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('keyfarm_login_failures_total{reason="bad_credentials"}'));
  return Number(line?.split(' ')[1] ?? 0);
}

async function keysUnder(prefix: string): Promise<string[]> {
  const redis = suiteRedis();
  try {
    return await scanKeys(redis, `${prefix}:*`);
  } finally {
    redis.disconnect();
  }
}

const statusCounts = (statuses: number[]) =>
  statuses.reduce<Record<number, number>>((m, s) => {
    m[s] = (m[s] ?? 0) + 1;
    return m;
  }, {});

describe('login throttling with the default TRUST_PROXY (no proxy trusted)', () => {
  let farm: TestFarm;
  before(async () => {
    farm = await startTestFarm(
      'login-throttle-direct',
      { RATE_LIMIT_ALLOWLIST: '', RATE_LIMIT_LOGIN: 'off' },
      { api: true },
    );
  });
  after(async () => farm?.stop());

  it('runs at most 5 real password checks for 40 parallel wrong passwords on one account; the rest get 429', async () => {
    const user = await registerUser(farm.url);
    const before = await failedChecks(farm.url);
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) => login(farm.url, user.email, `wrong guess ${i}`)),
    );
    const counts = statusCounts(answers.map((a) => a.status));
    assert.deepEqual(counts, { 401: 5, 429: 35 });
    assert.equal((await failedChecks(farm.url)) - before, 5, 'password checks that ran');
    for (const a of answers.filter((r) => r.status === 429)) assert.ok(Number(a.headers.get('retry-after')) > 0);
  });

  it('ignores a rotating X-Forwarded-For: the per-address limit still holds', async () => {
    // Every guess here comes from 127.0.0.1 (so do the earlier tests' 5 failures): 20 failures at most.
    const statuses: number[] = [];
    for (let i = 0; i < 25; i++)
      statuses.push((await login(farm.url, unknownEmail(), 'wrong password', freshIp())).status);
    const checked = statuses.indexOf(429);
    assert.ok(checked >= 0 && checked <= 20, `${checked} guesses checked before the address had to wait`);
    assert.deepEqual(statuses.slice(checked), Array(25 - checked).fill(429));
  });

  it('keeps Redis keys short whatever X-Forwarded-For holds', async () => {
    const huge = Array.from({ length: 1000 }, (_, i) => `10.${i % 250}.0.${i % 200}`)
      .join(',')
      .slice(0, 6000);
    assert.ok(huge.length >= 6000 - 20);
    await login(farm.url, unknownEmail(), 'wrong password', huge);
    const keys = await keysUnder(farm.config.KEY_PREFIX);
    assert.ok(
      keys.some((k) => k.includes(':login:')),
      'failures were counted',
    );
    for (const key of keys) assert.ok(key.length <= 120, `key of ${key.length} bytes: ${key.slice(0, 80)}…`);
  });
});

describe('login throttling behind one proxy (TRUST_PROXY=1)', () => {
  let farm: TestFarm;
  before(async () => {
    farm = await startTestFarm(
      'login-throttle-proxied',
      { TRUST_PROXY: '1', RATE_LIMIT_ALLOWLIST: '', RATE_LIMIT_LOGIN: 'off' },
      { api: true },
    );
  });
  after(async () => farm?.stop());

  it('counts the address the proxy saw (the right-most hop), not what the client wrote before it', async () => {
    const user = await registerUser(farm.url);
    const attacker = freshIp();
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++)
      statuses.push((await login(farm.url, user.email, `guess ${i}`, `${freshIp()}, ${attacker}`)).status);
    assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429, 429]);
    const owner = await login(farm.url, user.email, user.password, `${attacker}, ${freshIp()}`);
    assert.equal(owner.status, 200, 'the owner behind the same proxy is another client');
  });

  it('keeps Redis keys short when the trusted hop carries 6,000 characters of garbage', async () => {
    await login(farm.url, unknownEmail(), 'wrong password', 'x'.repeat(6000));
    await login(farm.url, unknownEmail(), 'wrong password', `1.2.3.4, ${'f'.repeat(6000)}`);
    const keys = await keysUnder(farm.config.KEY_PREFIX);
    assert.ok(keys.length > 0);
    for (const key of keys) assert.ok(key.length <= 120, `key of ${key.length} bytes`);
  });
});

describe('lockout as a weapon (a loopback proxy: TRUST_PROXY=127.0.0.1)', () => {
  let farm: TestFarm;
  before(async () => {
    farm = await startTestFarm(
      'login-throttle-lockout',
      { TRUST_PROXY: '127.0.0.1', RATE_LIMIT_ALLOWLIST: '', RATE_LIMIT_LOGIN: 'off' },
      { api: true },
    );
  });
  after(async () => farm?.stop());

  it('lets the owner log in from a known address while attackers from many addresses are held back', async () => {
    const user = await registerUser(farm.url);
    const home = freshIp();
    assert.equal((await login(farm.url, user.email, user.password, home)).status, 200);

    const attacker = freshIp();
    const fromOne: number[] = [];
    for (let i = 0; i < 8; i++) fromOne.push((await login(farm.url, user.email, `guess ${i}`, attacker)).status);
    assert.deepEqual(fromOne, [401, 401, 401, 401, 401, 429, 429, 429]);
    assert.equal(
      (await login(farm.url, user.email, user.password, home)).status,
      200,
      'one address guessing does not lock the owner out',
    );

    // Many addresses, 5 guesses each: the per-account limit (20 from unknown addresses) stops them.
    const spread = await Promise.all(
      Array.from({ length: 6 }, () => freshIp()).flatMap((ip) =>
        Array.from({ length: 5 }, (_, i) => login(farm.url, user.email, `spread ${i}`, ip)),
      ),
    );
    const counts = statusCounts(spread.map((r) => r.status));
    assert.equal(counts[401], 15, 'the account had 5 failures already: 15 more reach the 20 from unknown addresses');
    assert.equal(counts[429], 15);
    const stranger = await login(farm.url, user.email, user.password, freshIp());
    assert.equal(stranger.status, 429, 'an unknown address waits, even with the right password');
    assert.match(stranger.body.error, /try again in \d+ minutes?/);
    assert.equal(
      (await login(farm.url, user.email, user.password, home)).status,
      200,
      "the owner's known address does not",
    );
  });

  it('counts wrong admin passwords per address: one address locked out does not lock out another operator', async () => {
    const admin = (ip: string, password: string) =>
      fetch(`${farm.url}/admin/queues/api/queues`, {
        headers: { 'x-forwarded-for': ip, authorization: `Basic ${Buffer.from(`op:${password}`).toString('base64')}` },
      });
    const attacker = freshIp();
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) statuses.push((await admin(attacker, `wrong admin ${i}`)).status);
    assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429, 429]);
    const locked = await admin(attacker, farm.env.ADMIN_PASSWORD!);
    assert.equal(locked.status, 429);
    assert.ok(Number(locked.headers.get('retry-after')) > 0);
    assert.match(((await locked.json()) as { error: string }).error, /try again in \d+ minutes?/);
    assert.equal((await admin(freshIp(), farm.env.ADMIN_PASSWORD!)).status, 200, 'another operator gets in');

    const racer = freshIp();
    const parallel = await Promise.all(Array.from({ length: 20 }, (_, i) => admin(racer, `parallel guess ${i}`)));
    assert.deepEqual(
      statusCounts(parallel.map((r) => r.status)),
      { 401: 5, 429: 15 },
      'parallel guesses are counted one by one',
    );
  });

  it('shows the wait on the login page, with Retry-After', async () => {
    const user = await registerUser(farm.url);
    const ip = freshIp();
    for (let i = 0; i < 5; i++) assert.equal((await login(farm.url, user.email, `guess ${i}`, ip)).status, 401);
    const page = await fetch(`${farm.url}/login`, { headers: { 'x-forwarded-for': ip } });
    const html = await page.text();
    const csrfCookie = page.headers
      .getSetCookie()
      .map((c) => c.split(';')[0]!)
      .find((c) => c.includes('csrf'));
    const token = /name="_csrf" value="([^"]+)"/.exec(html)?.[1];
    assert.ok(csrfCookie && token, 'a form token');
    const res = await fetch(`${farm.url}/login`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: csrfCookie, 'x-forwarded-for': ip },
      body: new URLSearchParams({ email: user.email, password: user.password, _csrf: token }).toString(),
    });
    assert.equal(res.status, 429);
    const wait = Number(res.headers.get('retry-after'));
    assert.ok(wait > 14 * 60 && wait <= 15 * 60, `Retry-After ${wait}`);
    assert.match(await res.text(), /try again in 15 minutes/);
  });
});

describe("the login limiter's accounting, on Redis", () => {
  let redis: RedisClient;
  before(() => {
    redis = suiteRedis();
  });
  after(async () => {
    await redis.quit();
  });
  const limits = {
    accountClient: { max: 3, windowMs: 60_000 },
    client: { max: 100, windowMs: 60_000 },
    account: { max: 100, windowMs: 60_000 },
    knownAddressMs: 60_000,
  };
  const who = ['victim@example.com', '192.0.2.10'] as const;
  const opts = { perAccount: true };

  it('gives back a check that never ran (the database failed), and keeps the failures counted before it', async () => {
    const limiter = new LoginLimiter(redis, testKeyPrefix(), limits);
    // Two wrong passwords: counted, and nothing settles a failure.
    for (let i = 0; i < 2; i++) assert.equal((await limiter.attempt(...who, opts)).retryAfterSeconds, 0);
    // Five checks that never ran are each given back: none of them brings the client nearer its wait.
    for (let i = 0; i < 5; i++) {
      const attempt = await limiter.attempt(...who, opts);
      assert.equal(attempt.retryAfterSeconds, 0, `attempt ${i + 1} after the failures`);
      await attempt.release();
    }
    // The two failures still count: a third is allowed, then the client waits out the window.
    assert.equal((await limiter.attempt(...who, opts)).retryAfterSeconds, 0);
    const refused = await limiter.attempt(...who, opts);
    assert.ok(
      refused.retryAfterSeconds > 50 && refused.retryAfterSeconds <= 60,
      `waits ${refused.retryAfterSeconds} s`,
    );
  });

  it('keys an account the same in any letter case, in short printable keys', async () => {
    const limiter = new LoginLimiter(redis, testKeyPrefix(), limits);
    assert.deepEqual(limiter.keys('Victim@Example.COM', '192.0.2.10'), limiter.keys(...who));
    assert.notDeepEqual(limiter.keys('other@example.com', '192.0.2.10').keys[2], limiter.keys(...who).keys[2]);
    for (const key of limiter.keys(...who).keys) assert.match(key, /^[!-~]{1,120}$/, JSON.stringify(key));
  });
});
