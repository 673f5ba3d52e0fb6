// Graceful shutdown of real processes on SIGTERM: readiness turns 503 at once while the api keeps serving
// for SHUTDOWN_DELAY_MS, then the port closes; a request in flight is still answered; running jobs finish
// (or, past SHUTDOWN_JOBS_TIMEOUT_MS, run again on another worker); relays and pools close; exit 0. A second
// SIGTERM, or in-flight HTTP past SHUTDOWN_HTTP_TIMEOUT_MS, ends things with a clear line.
//
// A request is held in flight without test hooks in the product: the test locks the `keys` table, so the
// worker's cold load of the user's key (a SELECT on it) waits inside a running job until the lock goes.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { verifyEvent } from 'nostr-tools';
import pg from 'pg';
import { shardOf } from '../../shared/shard.js';
import { shardOwners } from '../../workers/shard-leases.js';
import { authorizeApp, call, registerUser, rpc, type Res } from '../support/client.js';
import {
  baseTestEnv,
  createTestDatabase,
  freePort,
  testKeyPrefix,
  type TestDatabase,
  migrateDatabase,
  shardNamesOf,
  suiteRedis,
} from '../support/env.js';
import { spawnKeyfarm, stopAllKeyfarms, type KeyfarmProcess } from '../support/processes.js';
import { startTestRelay, type TestRelay } from '../support/relay.js';
import { recordDatabaseKeys } from '../support/stored-keys.js';
import { waitFor } from './farm-fixtures.js';

const note = (content: string) => ({ kind: 1, content, tags: [], created_at: Math.floor(Date.now() / 1000) });

type Account = Awaited<ReturnType<typeof registerUser>> & { token: string };

/** Holds an exclusive lock on the keys table: cold key loads wait until release(). */
async function lockKeys(url: string): Promise<{ release(): Promise<void>; waiters(): Promise<number> }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query('BEGIN');
  await client.query('LOCK TABLE keys IN ACCESS EXCLUSIVE MODE');
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      await client.query('COMMIT');
      await client.end();
    },
    async waiters() {
      const { rows } = await client.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
          WHERE c.relname = 'keys' AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND NOT l.granted`,
      );
      return rows[0]!.n;
    },
  };
}

/** True when nothing listens on the URL's port any more. */
async function refused(url: string): Promise<boolean> {
  try {
    await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) }).then((r) => r.arrayBuffer());
    return false;
  } catch (err) {
    return /ECONNREFUSED/.test(String((err as { cause?: unknown }).cause ?? err));
  }
}

function assertSigned(res: Res, user: Account, what: string): void {
  assert.equal(res.status, 200, `${what}: ${res.status} ${JSON.stringify(res.body)}`);
  assert.equal(res.body.result.pubkey, user.pubkey, what);
  assert.ok(verifyEvent(res.body.result), `${what}: valid signature`);
}

describe('graceful shutdown on SIGTERM', () => {
  let db: TestDatabase;
  let env: Record<string, string>;
  let relay: TestRelay;

  before(async () => {
    [db, relay] = await Promise.all([createTestDatabase(), startTestRelay()]);
    await migrateDatabase(db.url);
    env = baseTestEnv({
      DATABASE_URL: db.url,
      SHARD_COUNT: '4',
      LEASE_TTL_MS: '1500',
      JOB_LOCK_MS: '2000',
      CRYPTO_THREADS: '1',
      // Keys load when a request needs them, not ahead (key prefetch): a cold user's key stays cold.
      KEY_PREFETCH_MAX_INFLIGHT: '0',
    });
  });
  beforeEach(isolate);
  after(async () => {
    await stopAllKeyfarms();
    await relay?.stop();
    try {
      // Every key the processes held (server-generated ones included) goes to the secret scan.
      if (env) await recordDatabaseKeys(env);
    } finally {
      await db?.drop().catch(() => undefined);
    }
  });

  /** Each test its own Redis namespace, so a process another test left running cannot take its jobs. */
  function isolate(): void {
    env = { ...env, KEY_PREFIX: testKeyPrefix() };
  }

  async function startApi(
    extra: Record<string, string>,
    name: string,
  ): Promise<{ proc: KeyfarmProcess; base: string }> {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const proc = await spawnKeyfarm(
      'api',
      { ...env, ...extra, PORT: String(port) },
      { name, ready: { url: `${base}/healthz/ready` } },
    );
    return { proc, base };
  }

  /** Waits until a request of the user is admitted to its shard (in flight, with no worker to run it). */
  async function queued(user: Account): Promise<void> {
    const names = shardNamesOf(env);
    const redis = suiteRedis();
    try {
      await waitFor(
        'the request queued',
        async () => Number(await redis.hget(names.meter(shardOf(user.pubkey, Number(env.SHARD_COUNT))), 'count')) > 0,
      );
    } finally {
      redis.disconnect();
    }
  }

  /** A user whose token the api has cached (a ping) and whose key no worker holds yet. */
  async function coldUser(base: string): Promise<Account> {
    const u = await registerUser(base);
    const token = (await authorizeApp(base, u.session, 'full')).access_token;
    assert.equal((await rpc(base, token, 'ping')).status, 200);
    return { ...u, token };
  }

  it('all-in-one: not ready but serving during the delay, then closed; the request in flight is answered; relays closed; exit 0', async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const proc = await spawnKeyfarm(
      'all',
      { ...env, PORT: String(port), SHUTDOWN_DELAY_MS: '1500', BUNKER_RELAYS: relay.url },
      {
        name: 'all-shutdown',
        ready: { url: `${base}/healthz/ready` },
      },
    );
    await waitFor('relay-ingest connected', () => relay.clients === 1);
    const user = await coldUser(base);
    const lock = await lockKeys(db.url);
    try {
      const inFlight = rpc(base, user.token, 'sign_event', [note('in flight at SIGTERM')]);
      await waitFor('the cold key load waiting on the lock', async () => (await lock.waiters()) === 1);

      proc.kill('SIGTERM');
      await proc.waitForLog(/shutting down: finishing in-flight work/, 5000);
      const notReady = await call(base, 'GET', '/healthz/ready');
      assert.equal(notReady.status, 503);
      assert.equal(notReady.body.checks.shutdown, 'shutting down');
      // Still serving while load balancers notice.
      assert.equal((await rpc(base, user.token, 'ping')).status, 200);
      await waitFor('the port closed after the delay', () => refused(base), 10_000);
      assert.equal(proc.hasExited(), false, 'still running: a request is in flight');

      await lock.release();
      assertSigned(await inFlight, user, 'the request in flight at SIGTERM');
      assert.deepEqual(await proc.exited, { code: 0, signal: null });
    } finally {
      await lock.release();
    }
    await proc.waitForLog(/"msg":"relay-ingest stopped"/, 1000);
    await proc.waitForLog(/"msg":"stopped"/, 1000);
    assert.equal(relay.clients, 0);
  });

  it('api and workers stopped together: the running job finishes, the api answers, both exit 0', async () => {
    const [api, workers] = await Promise.all([
      startApi({ SHUTDOWN_DELAY_MS: '0' }, 'api-together'),
      spawnKeyfarm('workers', env, { name: 'workers-together', ready: { log: /keyfarm started/ } }),
    ]);
    const user = await coldUser(api.base);
    const lock = await lockKeys(db.url);
    try {
      const inFlight = rpc(api.base, user.token, 'sign_event', [note('job running at SIGTERM')]);
      await waitFor('the job waiting on the lock', async () => (await lock.waiters()) === 1);
      api.proc.kill('SIGTERM');
      workers.kill('SIGTERM');
      await workers.waitForLog(/shutting down/, 5000);
      await waitFor('the api port closed', () => refused(api.base), 10_000);
      // Both are shutting down with nothing left to wait for but this job: one that did not wait for it would
      // exit within a few ms. 500 ms is a wide margin for that on a loaded machine, and far below
      // SHUTDOWN_JOBS_TIMEOUT_MS, the longest they may wait.
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(workers.hasExited() || api.proc.hasExited(), false, 'both wait for the running job');
      await lock.release();
      assertSigned(await inFlight, user, 'the job running at SIGTERM');
      assert.deepEqual(await workers.exited, { code: 0, signal: null });
      assert.deepEqual(await api.proc.exited, { code: 0, signal: null });
    } finally {
      await lock.release();
    }
    await workers.waitForLog(/"msg":"workers stopped"/, 1000);
  });

  it('a job outliving SHUTDOWN_JOBS_TIMEOUT_MS is left to another worker, which answers it', async () => {
    const workerEnv = { ...env, SHUTDOWN_JOBS_TIMEOUT_MS: '1000' };
    const [api, ...workers] = await Promise.all([
      startApi({ RPC_TIMEOUT_MS: '20000' }, 'api-jobs-timeout'),
      ...[1, 2].map((n) =>
        spawnKeyfarm('workers', workerEnv, { name: `workers-timeout-${n}`, ready: { log: /keyfarm started/ } }),
      ),
    ]);
    const user = await coldUser(api.base);
    // The worker that owns the user's shard for good (the lease holder is shardOwners' choice over both
    // members); its member id carries its pid.
    const names = shardNamesOf(env);
    const shard = shardOf(user.pubkey, Number(env.SHARD_COUNT));
    const redis = suiteRedis();
    let owner: KeyfarmProcess | undefined;
    try {
      await waitFor('the shard settled on its owner', async () => {
        const members = await redis.zrange(names.members(), 0, -1);
        const holder = (await redis.get(names.lease(shard))) ?? '';
        owner = workers.find((w) => holder.split(':')[1] === String(w.pid));
        return (
          members.length === 2 && holder === shardOwners(members, Number(env.SHARD_COUNT))[shard] && owner !== undefined
        );
      });
    } finally {
      redis.disconnect();
    }
    const lock = await lockKeys(db.url);
    try {
      const inFlight = rpc(api.base, user.token, 'sign_event', [note('outlives the jobs timeout')]);
      await waitFor('the job waiting on the lock', async () => (await lock.waiters()) === 1);
      const stoppedAt = performance.now();
      owner!.kill('SIGTERM');
      await owner!.waitForLog(/jobs still running at shutdown; leaving them to be run again elsewhere/, 5000);
      assert.deepEqual(await owner!.exited, { code: 0, signal: null });
      const ms = performance.now() - stoppedAt;
      assert.ok(ms < 10_000, `exited ${ms.toFixed(0)} ms after SIGTERM`);
      await lock.release();
      // The job's lock runs out (JOB_LOCK_MS) and the shard's new owner runs it again.
      assertSigned(await inFlight, user, 'the job left behind');
    } finally {
      await lock.release();
    }
    await Promise.all([api.proc.stop(), ...workers.map((w) => w.stop())]);
  });

  it('in-flight HTTP past SHUTDOWN_HTTP_TIMEOUT_MS is cut with a clear line, exit 0; a second SIGTERM forces exit 1', async () => {
    // No workers: a signing request stays in flight until its RPC timeout (20 s).
    const [cut, forced] = await Promise.all([
      startApi({ SHUTDOWN_HTTP_TIMEOUT_MS: '1000', RPC_TIMEOUT_MS: '20000' }, 'api-http-timeout'),
      startApi({ RPC_TIMEOUT_MS: '20000' }, 'api-second-sigterm'),
    ]);
    const [u1, u2] = await Promise.all([coldUser(cut.base), coldUser(forced.base)]);

    const stuck = rpc(cut.base, u1.token, 'sign_event', [note('never answered')]).then(
      (r) => `status ${r.status}`,
      (err: Error) => `failed: ${String((err as { cause?: unknown }).cause ?? err)}`,
    );
    await queued(u1);
    const started = performance.now();
    cut.proc.kill('SIGTERM');
    await cut.proc.waitForLog(/in-flight requests outlived the shutdown timeout; closing their connections/, 10_000);
    assert.match(await stuck, /failed: .*(socket|closed|reset|terminated)/i, 'its connection was closed');
    assert.deepEqual(await cut.proc.exited, { code: 0, signal: null });
    assert.ok(performance.now() - started < 10_000);

    const pending = rpc(forced.base, u2.token, 'sign_event', [note('never answered either')]).catch(() => undefined);
    await queued(u2);
    forced.proc.kill('SIGTERM');
    await forced.proc.waitForLog(/shutting down/, 5000);
    forced.proc.kill('SIGTERM');
    assert.deepEqual(await forced.proc.exited, { code: 1, signal: null });
    await forced.proc.waitForLog(/second SIGTERM during shutdown: forcing exit/, 1000);
    await pending;
  });
});
