// A database that cannot hand out a connection in time answers 503 `database unavailable` with Retry-After,
// fast, on every kind of route (log in, register, a team route, an HTML page), never a 500: the pool of a
// real farm is exhausted (its few connections held), the requests made, and the connections given back
// just after the acquire timeout, as a load spike passes. A check that asks whether PostgreSQL answers at
// that moment gets "yes" and would call the request a 500; the error itself must say what failed.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import { SESSION_COOKIE } from '../../api/plugins/session.js';
import { call, registerUser, type Res } from '../support/client.js';
import { startTestFarm, type TestFarm } from '../support/farm.js';
import { recordSecret } from '../support/logs.js';

const POOL_SIZE = 2;
const ACQUIRE_TIMEOUT_MS = 500;
/** Time this side may add to the acquire timeout (a loaded event loop, password hashing before the query). */
const MARGIN_MS = 700;

describe('a database that cannot hand out a connection in time', () => {
  let farm: TestFarm;

  before(async () => {
    farm = await startTestFarm(
      'db-unavailable',
      { DB_POOL_SIZE: String(POOL_SIZE), DB_ACQUIRE_TIMEOUT_MS: String(ACQUIRE_TIMEOUT_MS) },
      { api: true },
    );
  });
  after(async () => {
    await farm?.stop();
  });

  it('answers log in, register, a team route and a page 503 with Retry-After within the acquire timeout, never 500', async (t) => {
    const user = await registerUser(farm.url);
    const newPassword = `pw-${randomBytes(12).toString('hex')}`;
    recordSecret(newPassword);
    const timed = async <T>(p: Promise<T>) => {
      const started = performance.now();
      const value = await p;
      return { value, ms: Math.round(performance.now() - started) };
    };
    const page = async (): Promise<Res<string>> => {
      const res = await fetch(`${farm.url}/account`, {
        headers: { cookie: `${SESSION_COOKIE}=${user.session}` },
        redirect: 'manual',
      });
      return { status: res.status, body: await res.text(), headers: res.headers };
    };

    const held: pg.PoolClient[] = await Promise.all(Array.from({ length: POOL_SIZE }, () => farm.rt.db.connect()));
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      for (const client of held) client.release();
    };
    try {
      const answers = Promise.all([
        timed(call(farm.url, 'POST', '/api/auth/login', { email: user.email, password: user.password })),
        timed(
          call(farm.url, 'POST', '/api/auth/register', {
            email: `spike-${Date.now()}@example.com`,
            password: newPassword,
          }),
        ),
        timed(call(farm.url, 'GET', '/api/teams', undefined, user.session)),
        timed(page()),
      ]);
      // The spike passes just after the requests' acquire timeout: the pool has connections again.
      await new Promise((r) => setTimeout(r, ACQUIRE_TIMEOUT_MS * 1.5));
      release();
      const [login, register, teams, account] = await answers;
      t.diagnostic(
        `login ${login.value.status} in ${login.ms} ms, register ${register.value.status} in ${register.ms} ms, ` +
          `teams ${teams.value.status} in ${teams.ms} ms, page ${account.value.status} in ${account.ms} ms`,
      );
      for (const [name, answer] of Object.entries({ login, register, teams })) {
        assert.equal(answer.value.status, 503, `${name}: ${JSON.stringify(answer.value.body)}`);
        assert.deepEqual(answer.value.body, { error: 'database unavailable' }, name);
        assert.match(answer.value.headers.get('retry-after') ?? '', /^[1-9]\d*$/, name);
        assert.ok(answer.ms < ACQUIRE_TIMEOUT_MS + MARGIN_MS, `${name} answered in ${answer.ms} ms`);
      }
      assert.equal(account.value.status, 503, 'the page is a 503 page');
      assert.match(account.value.headers.get('content-type') ?? '', /^text\/html/);
      assert.match(account.value.body, /try again/i);
      assert.doesNotMatch(account.value.body, /SELECT|timeout exceeded|postgres/i, 'no SQL or driver text on the page');
      assert.match(account.value.headers.get('retry-after') ?? '', /^[1-9]\d*$/);
      assert.ok(account.ms < ACQUIRE_TIMEOUT_MS + MARGIN_MS, `page answered in ${account.ms} ms`);
    } finally {
      release();
    }

    // With connections free again, the same requests work.
    const login = await call(farm.url, 'POST', '/api/auth/login', { email: user.email, password: user.password });
    assert.equal(login.status, 200, JSON.stringify(login.body));
    recordSecret(login.body.token);
    assert.equal((await page()).status, 200);
  });
});
