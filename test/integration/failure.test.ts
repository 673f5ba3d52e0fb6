// Failure behaviour with the real servers stopped and started under a running farm of processes (api,
// workers, relay-ingest): PostgreSQL down at start and while running, Redis crashed, the KeyManager (a
// Cloud KMS stand-in) failing and gone, relays gone. The farm has a PostgreSQL and a Redis of its own so the
// test can stop them; the tests run in order on one farm and each leaves it healthy.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { verifyEvent } from 'nostr-tools';
import { ShardNames, shardOf } from '../../shared/shard.js';
import { authorizeApp, call, registerUser, rpc, type Res } from '../support/client.js';
import { baseTestEnv, freePort, migrateDatabase } from '../support/env.js';
import { startFakeKms, type FakeKms } from '../support/fake-kms.js';
import { recordSecret } from '../support/logs.js';
import { Nip46Probe } from '../support/nip46-probe.js';
import { startOwnServices, type OwnServices } from '../support/own-services.js';
import { spawnKeyfarm, stopAllKeyfarms, type KeyfarmProcess } from '../support/processes.js';
import { startTestRelay, type TestRelay } from '../support/relay.js';
import { waitFor } from './farm-fixtures.js';

// Were anything to look for Application Default Credentials, it would find this and fail.
const NO_ADC = '/nonexistent/keyfarm-test-credentials.json';
const KMS_KEY = 'projects/keyfarm-test/locations/global/keyRings/failure/cryptoKeys/kek';
/** "At once": generous for a loaded 2-core machine, far below any timeout that could hide a hang. */
const FAST_MS = 3000;

const note = (content: string) => ({ kind: 1, content, tags: [], created_at: Math.floor(Date.now() / 1000) });

type Account = Awaited<ReturnType<typeof registerUser>> & { token: string };

/** Runs a request and measures it. */
async function timed<T>(run: () => Promise<T>): Promise<{ res: T; ms: number }> {
  const started = performance.now();
  const res = await run();
  return { res, ms: performance.now() - started };
}

function assertUnavailable(res: Res, ms: number, error: RegExp, what: string): void {
  assert.equal(res.status, 503, `${what}: ${res.status} ${JSON.stringify(res.body)}`);
  assert.match(String(res.body.error), error, what);
  assert.ok(Number(res.headers.get('retry-after')) >= 1, `${what}: Retry-After`);
  assert.ok(ms < FAST_MS, `${what} took ${ms.toFixed(0)} ms`);
}

function assertSigned(res: Res, user: Account, what: string): void {
  assert.equal(res.status, 200, `${what}: ${res.status} ${JSON.stringify(res.body)}`);
  assert.equal(res.body.result.pubkey, user.pubkey, what);
  assert.ok(verifyEvent(res.body.result), `${what}: valid signature`);
}

/** JSON log lines of a process with the given msg; `at` is the line's time in ms. */
function logLines(proc: KeyfarmProcess, msg: string): (Record<string, any> & { at: number })[] {
  return proc
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{') && l.includes(msg))
    .map((l) => JSON.parse(l) as Record<string, any>)
    .filter((l) => l.msg === msg)
    .map((l) => ({ ...l, at: Date.parse(l.time) }));
}

describe('failure behaviour: real servers stopped and started under a running farm', () => {
  let services: OwnServices;
  let kms: FakeKms;
  let relays: [TestRelay, TestRelay];
  let env: Record<string, string>;
  let api: KeyfarmProcess;
  let base: string;
  let ingest: KeyfarmProcess;
  let ingestBase: string;
  let workers: KeyfarmProcess;
  let users: Record<'a' | 'b' | 'c' | 'd' | 'e', Account>;
  /** Two bunkers of user a: one for the Redis test, one for the relay test (a connect secret binds one client). */
  let bunkerUrls: [string, string];
  // PostgreSQL down at start: a process pointed at a dead port, started first so its 15 s of retries
  // overlap the rest of the setup.
  let deadPg: { proc: KeyfarmProcess; startedAt: number; port: number };

  const startWorkers = () => spawnKeyfarm('workers', env, { ready: { log: /keyfarm started/ } });
  const ready = (url: string) => call(url, 'GET', '/healthz/ready');
  const sign = (u: Account, text: string) => rpc(base, u.token, 'sign_event', [note(text)]);

  before(async () => {
    const port = await freePort();
    deadPg = {
      proc: await spawnKeyfarm(
        'api',
        baseTestEnv({
          DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/keyfarm`,
          PORT: String(await freePort()),
        }),
        { name: 'api-dead-postgres' },
      ),
      startedAt: performance.now(),
      port,
    };
    [services, kms, relays] = await Promise.all([
      startOwnServices('failure'),
      startFakeKms(),
      Promise.all([startTestRelay(), startTestRelay()]),
    ]);
    await migrateDatabase(services.databaseUrl);
    const [apiPort, ingestPort] = [await freePort(), await freePort()];
    base = `http://127.0.0.1:${apiPort}`;
    ingestBase = `http://127.0.0.1:${ingestPort}`;
    env = baseTestEnv({
      DATABASE_URL: services.databaseUrl,
      REDIS_URL: services.redisUrl,
      SHARD_COUNT: '4',
      RPC_TIMEOUT_MS: '5000',
      LEASE_TTL_MS: '1500',
      JOB_LOCK_MS: '2000',
      CRYPTO_THREADS: '1',
      GCP_KMS_KEY: KMS_KEY,
      GCP_KMS_ENDPOINT: kms.endpoint,
      GOOGLE_APPLICATION_CREDENTIALS: NO_ADC,
      BUNKER_RELAYS: relays.map((r) => r.url).join(','),
      // Keys load when a request needs them, not ahead (key prefetch): the cases below need cold keys.
      KEY_PREFETCH_MAX_INFLIGHT: '0',
    });
    [api, ingest, workers] = await Promise.all([
      spawnKeyfarm('api', { ...env, PORT: String(apiPort) }, { ready: { url: `${base}/healthz/ready` } }),
      // Its wait for a NIP-46 answer (before reading the job) is 5 s instead of 10.
      spawnKeyfarm(
        'relay-ingest',
        { ...env, PORT: String(ingestPort), RPC_TIMEOUT_MS: '2500' },
        { ready: { url: `${ingestBase}/healthz/ready` } },
      ),
      startWorkers(),
    ]);
    const account = async (): Promise<Account> => {
      const u = await registerUser(base);
      return { ...u, token: (await authorizeApp(base, u.session, 'full')).access_token };
    };
    const [a, b, c, d, e] = await Promise.all([account(), account(), account(), account(), account()]);
    users = { a: a!, b: b!, c: c!, d: d!, e: e! };
    const bunker = async (name: string) => {
      const res = await call(base, 'POST', '/api/user/bunker/create', { app_name: name }, users.a.session);
      assert.equal(res.status, 201);
      return res.body.bunker_url as string;
    };
    bunkerUrls = [await bunker('failure-bunker-1'), await bunker('failure-bunker-2')];
  });

  after(async () => {
    await stopAllKeyfarms();
    await Promise.all([kms?.close(), ...(relays ?? []).map((r) => r.stop())]);
    await services?.remove();
  });

  it('PostgreSQL down at start: retries after 1, 2, 4 and 8 s, then exits 1 with one clear line', async () => {
    const { code } = await deadPg.proc.exited;
    const elapsed = performance.now() - deadPg.startedAt;
    assert.equal(code, 1);
    assert.ok(elapsed > 14_500 && elapsed < 60_000, `exited after ${elapsed.toFixed(0)} ms, expected about 15 s`);
    const retries = logLines(deadPg.proc, 'PostgreSQL unreachable; retrying');
    assert.deepEqual(
      retries.map((l) => l.retryInSeconds),
      [1, 2, 4, 8],
    );
    const gaps = retries.slice(1).map((l, i) => l.at - retries[i]!.at);
    for (const [i, s] of [1000, 2000, 4000].entries())
      assert.ok(gaps[i]! >= s - 50 && gaps[i]! < s * 3, `gap ${i + 1}: ${gaps[i]} ms`);
    const plain = deadPg.proc
      .output()
      .split('\n')
      .filter((l) => l.startsWith('keyfarm: '));
    assert.equal(plain.length, 1, plain.join('\n'));
    assert.match(
      plain[0]!,
      new RegExp(
        `^keyfarm: PostgreSQL at 127\\.0\\.0\\.1:${deadPg.port} is unreachable after 5 attempts \\(.*ECONNREFUSED.*\\); giving up$`,
      ),
    );
  });

  it('PostgreSQL down while running: cached tokens and keys sign, the rest gets a fast 503, all recovers by itself', async () => {
    const { a, b, c } = users;
    assertSigned(await sign(a, 'warm'), a, 'a warms its token and key');
    assert.equal((await rpc(base, b.token, 'ping')).status, 200, 'b warms its token only');
    const sessions = async () =>
      (
        (await call(base, 'GET', '/api/user/sessions', undefined, a.session)).body as {
          application_name: string;
          activity_count: number;
        }[]
      ).find((s) => !s.application_name.startsWith('failure-bunker'))!;
    await waitFor('the warm-up activity written', async () => (await sessions()).activity_count === 1);

    await services.stopPostgres();
    for (let i = 0; i < 3; i++) {
      const { res, ms } = await timed(() => sign(a, `during outage ${i}`));
      assertSigned(res, a, `cached token and key, outage request ${i}`);
      assert.ok(ms < FAST_MS, `signed in ${ms.toFixed(0)} ms`);
    }
    let t = await timed(() => sign(b, 'cold key'));
    assertUnavailable(t.res, t.ms, /key unavailable/, 'cached token, cold key');
    t = await timed(() => sign(c, 'cold token'));
    assertUnavailable(t.res, t.ms, /database unavailable/, 'token never seen');
    t = await timed(() => call(base, 'POST', '/api/auth/login', { email: c.email, password: c.password }));
    assertUnavailable(t.res, t.ms, /database unavailable/, 'login');
    const notReady = await ready(base);
    assert.equal(notReady.status, 503);
    assert.notEqual(notReady.body.checks.postgres, 'ok');
    assert.equal(notReady.body.checks.redis, 'ok');
    assert.equal((await call(base, 'GET', '/health')).status, 200, 'alive while not ready');
    const ingestNotReady = await ready(ingestBase);
    assert.equal(ingestNotReady.status, 503);
    assert.notEqual(ingestNotReady.body.checks.postgres, 'ok');

    await services.startPostgres();
    await waitFor('the api ready again', async () => (await ready(base)).status === 200, 30_000);
    assertSigned(await sign(b, 'after'), b, 'cold key after recovery');
    assertSigned(await sign(c, 'after'), c, 'new token after recovery');
    assert.equal((await call(base, 'POST', '/api/auth/login', { email: c.email, password: c.password })).status, 200);
    // Activity of the outage waited in the worker and was written once the database came back.
    await waitFor('the outage activity written', async () => (await sessions()).activity_count === 4, 15_000);
    assert.equal(api.hasExited() || workers.hasExited() || ingest.hasExited(), false);
  });

  it('Redis crashed under load: 503 at once, nothing hangs, not ready; api and workers reconnect by themselves', async () => {
    // Two clients sign in a loop through the crash. Every request is answered, at once: 200 before and
    // after, 503 `not_queued` (Retry-After) while Redis is away, 504 `outcome_unknown` for those whose job
    // was out when it died (they may have been signed); no 500, no wait for Redis. The same processes serve again once it is back (shard queue consumers, shard leases, the
    // reply subscriptions reconnect by themselves).
    const { a, b } = users;
    const outcomes: { status: number; ms: number; error: string; reason: string; at: number }[] = [];
    let running = true;
    const loop = async (u: Account) => {
      while (running) {
        const { res, ms } = await timed(() => sign(u, 'through the crash'));
        outcomes.push({
          status: res.status,
          ms,
          error: String(res.body?.error ?? ''),
          reason: String(res.body?.reason ?? ''),
          at: Date.now(),
        });
        if (res.status !== 200) await new Promise((r) => setTimeout(r, 50));
      }
    };
    const loops = [loop(a), loop(b)];
    const count = (status: number, since = 0) => outcomes.filter((o) => o.status === status && o.at >= since).length;
    try {
      await waitFor('load flowing', () => count(200) >= 10);
      await services.killRedis();
      await waitFor('503s while Redis is away', () => count(503) >= 10);
      const notReady = await ready(base);
      assert.equal(notReady.status, 503);
      assert.notEqual(notReady.body.checks.redis, 'ok');
      assert.equal(notReady.body.checks.postgres, 'ok');
      const ingestNotReady = await ready(ingestBase);
      assert.equal(ingestNotReady.status, 503);
      assert.notEqual(ingestNotReady.body.checks.redis, 'ok');

      const backAt = Date.now();
      await services.startRedis();
      await waitFor('signing again without a restart', () => count(200, backAt) >= 10, 30_000);
    } finally {
      running = false;
      await Promise.all(loops);
    }
    const statuses = [...new Set(outcomes.map((o) => o.status))].sort();
    assert.ok(statuses.includes(503), `statuses seen: ${statuses}`);
    assert.deepEqual(
      statuses.filter((s) => s !== 200 && s !== 503 && s !== 504),
      [],
      `statuses seen: ${statuses}`,
    );
    const refused = outcomes.filter((x) => x.status === 503 || x.status === 504);
    for (const o of refused) {
      assert.match(o.error, /queue unavailable/);
      assert.equal(o.reason, o.status === 503 ? 'not_queued' : 'outcome_unknown');
    }
    const slowestRefusal = Math.max(...refused.map((o) => o.ms));
    assert.ok(slowestRefusal < FAST_MS, `slowest 503 took ${slowestRefusal.toFixed(0)} ms`);
    // Signatures right after the restart may wait for the shards' leases to be taken again.
    const slowest = Math.max(...outcomes.map((o) => o.ms));
    assert.ok(slowest < Number(env.RPC_TIMEOUT_MS), `slowest answer took ${slowest.toFixed(0)} ms`);
    await waitFor(
      'api and relay-ingest ready again',
      async () => (await ready(base)).status === 200 && (await ready(ingestBase)).status === 200,
      30_000,
    );
    assert.equal(api.hasExited() || workers.hasExited() || ingest.hasExited(), false, 'the same processes');
  });

  it('Redis crashed: a NIP-46 request acknowledged before the crash is answered after it', async () => {
    // What "acknowledged" means, and why it survives a crash:
    // - HTTP RPC: a request is acknowledged by its answer. A 200 is a finished signature, so nothing of it
    //   can be lost; the guarantee is that no request hangs (the test above).
    // - NIP-46: a request is acknowledged once relay-ingest has added its job to the shard queue (the
    //   relay's copy is not asked for again). The embedded Redis writes every command to its append-only
    //   file before it replies (appendonly yes), so a crashed Redis (SIGKILL) comes back with the job;
    //   only a machine crash could lose up to the last second (appendfsync everysec).
    // The workers are stopped so the job waits in Redis across the crash.
    const { a } = users;
    assert.equal((await workers.stop()).code, 0, 'workers stop cleanly');
    const probe = new Nip46Probe(bunkerUrls[0]);
    const connect = probe.request('connect', [probe.bunkerPubkey, probe.secret]);
    await probe.publish(connect.event, relays[0].url);
    const names = new ShardNames(env.KEY_PREFIX!);
    const shard = shardOf(a.pubkey, Number(env.SHARD_COUNT));
    const redis = new Redis(services.redisUrl, { maxRetriesPerRequest: 1, lazyConnect: true });
    redis.on('error', () => undefined);
    await redis.connect();
    // The stream may also hold jobs the stopped workers left pending: this one is found by its request.
    await waitFor('the NIP-46 job queued', async () =>
      (await redis.xrange(names.jobs(shard), '-', '+')).some(([, fields]) =>
        fields.some((f) => f.includes(connect.event.id)),
      ),
    );
    redis.disconnect();

    await services.killRedis();
    await services.startRedis();
    // The workers come back only after relay-ingest's wait for the answer ran out once: a late answer
    // to an acknowledged request must still go out.
    await ingest.waitForLog(/job not answered yet; still waiting|no answer in time/, 30_000);
    workers = await startWorkers();
    await waitFor('the NIP-46 answer', () => probe.answersOn(relays[0], connect.id).length > 0, 30_000);
    assert.deepEqual(probe.answersOn(relays[0], connect.id), [{ id: connect.id, result: 'ack' }]);
    await waitFor('signing again', async () => (await sign(a, 'after redis')).status === 200, 30_000);
    assert.equal(api.hasExited() || ingest.hasExited(), false);
  });

  it('KeyManager failing, then gone: retries, then 503 for cold keys only; cached keys sign; recovers', async () => {
    const { a, d, e } = users;
    assertSigned(await sign(a, 'warm'), a, 'a warm');
    for (const u of [d, e]) assert.equal((await rpc(base, u.token, 'ping')).status, 200, 'token cached, key cold');

    // A transient fault: four failed Decrypts (the first try and the retries after 100, 200, 400 ms).
    kms.resetCalls();
    kms.failNext(4);
    let t = await timed(() => sign(d, 'kms failing'));
    assertUnavailable(t.res, t.ms, /key manager unavailable/, 'cold key, KMS failing');
    const decrypts = kms.calls.filter((c) => c.method === 'decrypt');
    assert.deepEqual(
      decrypts.map((c) => c.code),
      [14, 14, 14, 14],
      'four UNAVAILABLE attempts',
    );
    [100, 200, 400].forEach((delay, i) => {
      const gap = decrypts[i + 1]!.at - decrypts[i]!.at;
      assert.ok(
        gap >= delay - 5 && gap < delay * 5 + 500,
        `retry ${i + 1} after ${gap.toFixed(0)} ms, expected ${delay}`,
      );
    });
    assertSigned(await sign(d, 'kms back'), d, 'the fault passed');

    // The KMS gone altogether.
    await kms.stop();
    assertSigned(await sign(a, 'kms gone'), a, 'cached key while the KMS is gone');
    t = await timed(() => sign(e, 'kms gone'));
    assertUnavailable(t.res, t.ms, /key manager unavailable/, 'cold key, KMS gone');
    const password = recordSecret(`pw-${randomBytes(12).toString('hex')}`);
    t = await timed(() =>
      call(base, 'POST', '/api/auth/register', { email: `kms-gone-${Date.now()}@example.com`, password }),
    );
    assertUnavailable(t.res, t.ms, /key manager unavailable/, 'register (a new key to wrap)');
    await kms.start();
    await waitFor('a cold key signing again', async () => (await sign(e, 'kms back')).status === 200, 30_000);
    assertSigned(await sign(e, 'kms back'), e, 'after the KMS came back');
  });

  it('a relay gone: reconnects with backoff; ready while one relay is up, not ready with none', async () => {
    const [r1, r2] = relays;
    const connectedRelays = async () =>
      Number(/^keyfarm_relays_connected (\d+)/m.exec((await call(ingestBase, 'GET', '/api/metrics')).body)?.[1]);
    await waitFor('both relays connected', async () => (await connectedRelays()) === 2, 15_000);
    const probe = new Nip46Probe(bunkerUrls[1]);
    const ask = async (relay: TestRelay, method = 'ping', params: string[] = [], expected = 'pong') => {
      const { id, event } = probe.request(method, params);
      await probe.publish(event, relay.url);
      await waitFor(`${method} answered through ${relay.url}`, () => probe.answersOn(relay, id).length > 0, 15_000);
      assert.deepEqual(probe.answersOn(relay, id), [{ id, result: expected }]);
    };
    await ask(r1, 'connect', [probe.bunkerPubkey, probe.secret], 'ack');

    const downAt = Date.now();
    await r1.stop();
    await waitFor('relay 1 seen gone', async () => (await connectedRelays()) === 1, 15_000);
    const oneUp = await ready(ingestBase);
    assert.equal(oneUp.status, 200, JSON.stringify(oneUp.body));
    await ask(r2);

    await r2.stop();
    await waitFor('not ready with no relay', async () => (await ready(ingestBase)).status === 503, 15_000);
    const none = await ready(ingestBase);
    assert.match(none.body.checks.relays, /no relay connected \(0\/2\)/);

    // Failed attempts to reach relay 1 come at growing intervals (exponential backoff with jitter: each
    // wait is at least the whole previous base), never in a tight loop. 250 ms allows for scheduling lag.
    const failedAttempts = () =>
      logLines(ingest, 'relay socket error')
        .filter((l) => l.relay === r1.url && l.at >= downAt)
        .map((l) => l.at);
    await waitFor('three failed attempts to reach relay 1', () => failedAttempts().length >= 3, 15_000);
    await r1.start();
    await waitFor('ready again with relay 1 back', async () => (await ready(ingestBase)).status === 200, 30_000);
    await ask(r1); // resubscribed after the reconnect
    await r2.start();
    await waitFor('both relays connected again', async () => (await connectedRelays()) === 2, 30_000);

    const attempts = failedAttempts();
    assert.ok(attempts.length >= 3 && attempts.length < 20, `${attempts.length} failed attempts`);
    const gaps = attempts.slice(1).map((at, i) => at - attempts[i]!);
    assert.ok(Math.min(...gaps) >= 100, `backoff gaps ${gaps.join(', ')} ms`);
    for (let i = 1; i < gaps.length; i++)
      assert.ok(gaps[i]! >= gaps[i - 1]! - 250, `backoff gaps ${gaps.join(', ')} ms`);
  });
});
