// The api's token lookups under overload and stalls, against real servers: many connections on one
// token across its cache expiries make a handful of PostgreSQL reads (not one per connection), and a
// frozen PostgreSQL (SIGSTOP) costs a request at most its deadline: the cached entry, else a fast 503.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Db } from '../../database/pool.js';
import { authorizeApp, call, registerUser, rpc } from '../support/client.js';
import { startTestFarm, type TestFarm } from '../support/farm.js';
import { startOwnServices, type OwnServices } from '../support/own-services.js';

/** Counts the token lookups (the one query that reads oauth_tokens by access_hash) made on a pool. */
function countTokenLookups(db: Db): { readonly count: number } {
  const counter = { count: 0 };
  const query = db.query.bind(db) as (...args: unknown[]) => unknown;
  (db as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
    // A query is its text, or a config object (a named statement) carrying it.
    const text = typeof args[0] === 'string' ? args[0] : (args[0] as { text?: string } | undefined)?.text;
    if (text?.includes('t.access_hash = $1')) counter.count++;
    return query(...args);
  };
  return counter;
}

interface WrkResult {
  requests: number;
  non2xx: number;
  socketErrors: number;
  output: string;
}

/** wrk against POST /api/nostr {ping}; the token goes in a script file (never on a command line). */
async function wrk(url: string, token: string, connections: number, seconds: number): Promise<WrkResult> {
  const dir = mkdtempSync(path.join(tmpdir(), 'kf-wrk-'));
  const script = path.join(dir, 'ping.lua');
  writeFileSync(
    script,
    [
      'wrk.method = "POST"',
      `wrk.body = '{"method":"ping","params":[]}'`,
      'wrk.headers["Content-Type"] = "application/json"',
      `wrk.headers["Authorization"] = "Bearer ${token}"`,
    ].join('\n'),
    { mode: 0o600 },
  );
  try {
    const output = await new Promise<string>((resolve, reject) => {
      const child = spawn('wrk', [
        '-t',
        '2',
        '-c',
        String(connections),
        '-d',
        `${seconds}s`,
        '--timeout',
        '10s',
        '-s',
        script,
        `${url}/api/nostr`,
      ]);
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      child.once('error', reject);
      child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`wrk exited ${code}: ${out}`))));
    });
    const num = (re: RegExp) => Number(re.exec(output)?.[1] ?? 0);
    const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
    return {
      requests: num(/(\d+) requests in/),
      non2xx: num(/Non-2xx or 3xx responses: (\d+)/),
      socketErrors: errors ? errors.slice(1).reduce((s, n) => s + Number(n), 0) : 0,
      output,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('token lookups under many connections', () => {
  let farm: TestFarm;
  const TTL_MS = 1000;

  before(async () => {
    farm = await startTestFarm('overload-stampede', { TOKEN_CACHE_TTL_MS: String(TTL_MS) }, { api: true });
  });
  after(async () => {
    await farm?.stop();
  });

  it('1,000 connections on one token across several cache expiries make about one read per expiry, and no 503', async (t) => {
    const user = await registerUser(farm.url);
    const { access_token: token } = await authorizeApp(farm.url, user.session);
    assert.equal((await rpc(farm.url, token, 'ping')).status, 200);
    const lookups = countTokenLookups(farm.rt.db);
    const seconds = 4;
    const result = await wrk(farm.url, token, 1000, seconds);
    t.diagnostic(
      `${result.requests} requests, ${lookups.count} token lookups, ${result.non2xx} non-2xx, ${result.socketErrors} socket errors`,
    );
    assert.ok(result.requests > 1000, `wrk made requests: ${result.output}`);
    assert.equal(result.non2xx, 0, `every request answered 200: ${result.output}`);
    assert.equal(result.socketErrors, 0, `no connection failed: ${result.output}`);
    // The entry is refreshed ahead of each expiry by one read: about seconds * 1000 / TTL_MS of them.
    const expiries = (seconds * 1000) / TTL_MS;
    assert.ok(lookups.count <= expiries + 3, `${lookups.count} lookups for ${expiries} expiries`);
  });
});

describe('a frozen PostgreSQL', () => {
  let services: OwnServices;
  let farm: TestFarm;
  const LOOKUP_TIMEOUT_MS = 500;
  const STATEMENT_TIMEOUT_MS = 1000;

  before(async () => {
    services = await startOwnServices('overload-freeze');
    farm = await startTestFarm(
      'overload-freeze',
      {
        DATABASE_URL: services.databaseUrl,
        REDIS_URL: services.redisUrl,
        TOKEN_CACHE_TTL_MS: '1000',
        DB_LOOKUP_TIMEOUT_MS: String(LOOKUP_TIMEOUT_MS),
        DB_STATEMENT_TIMEOUT_MS: String(STATEMENT_TIMEOUT_MS),
        DB_ACQUIRE_TIMEOUT_MS: '500',
      },
      { api: true },
    );
  });
  after(async () => {
    services?.thawPostgres();
    await farm?.stop();
    await services?.remove();
  });

  it('serves a cached token at its deadline, answers an uncached one 503 fast, and holds no request for the freeze', async (t) => {
    const user = await registerUser(farm.url);
    const cached = (await authorizeApp(farm.url, user.session, 'full', 'app-cached')).access_token;
    const uncached = (await authorizeApp(farm.url, user.session, 'full', 'app-uncached')).access_token;
    assert.equal((await rpc(farm.url, cached, 'ping')).status, 200);

    const timed = async <T>(p: Promise<T>) => {
      const started = performance.now();
      const value = await p;
      return { value, ms: Math.round(performance.now() - started) };
    };
    services.freezePostgres();
    try {
      await new Promise((r) => setTimeout(r, 1100)); // the cached entry is past its TTL
      const [hot, cold, session, login, page] = await Promise.all([
        timed(Promise.all(Array.from({ length: 20 }, () => rpc(farm.url, cached, 'ping')))),
        timed(Promise.all(Array.from({ length: 20 }, () => rpc(farm.url, uncached, 'ping')))),
        timed(call(farm.url, 'GET', '/api/user/sessions', undefined, user.session)),
        timed(call(farm.url, 'POST', '/api/auth/login', { email: user.email, password: user.password })),
        timed(fetch(`${farm.url}/account`, { headers: { cookie: `keyfarm_session=${user.session}` } })),
      ]);
      t.diagnostic(
        `frozen: cached token ${hot.ms} ms, uncached ${cold.ms} ms, session route ${session.ms} ms (${session.value.status}), ` +
          `login ${login.ms} ms (${login.value.status}), page ${page.ms} ms (${page.value.status})`,
      );
      assert.deepEqual(
        hot.value.map((r) => r.status),
        Array(20).fill(200),
        'the cached entry is served',
      );
      assert.ok(hot.ms < LOOKUP_TIMEOUT_MS + 700, `cached token answered in ${hot.ms} ms`);
      for (const r of cold.value) {
        assert.equal(r.status, 503);
        assert.equal(r.body.error, 'database unavailable');
        assert.match(r.headers.get('retry-after') ?? '', /^[1-9]\d*$/);
      }
      assert.ok(cold.ms < LOOKUP_TIMEOUT_MS + 700, `uncached token refused in ${cold.ms} ms`);
      // Any other database call on a request path ends by the statement deadline (plus this side's second).
      // Each answers once, by the statement deadline, not again after asking a frozen database if it is up.
      for (const [name, answer] of Object.entries({ session, login, page })) {
        assert.equal(answer.value.status, 503, name);
        assert.match(answer.value.headers.get('retry-after') ?? '', /^[1-9]\d*$/, name);
        assert.ok(answer.ms < STATEMENT_TIMEOUT_MS + 1000 + 700, `${name} answered in ${answer.ms} ms`);
      }
      assert.deepEqual(login.value.body, { error: 'database unavailable' });
    } finally {
      services.thawPostgres();
    }
    const back = Date.now() + 10_000;
    let status = 0;
    while (Date.now() < back && (status = (await rpc(farm.url, uncached, 'ping')).status) !== 200)
      await new Promise((r) => setTimeout(r, 200));
    assert.equal(status, 200, 'the uncached token works once PostgreSQL is back');
  });
});
