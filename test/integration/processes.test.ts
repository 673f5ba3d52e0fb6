// The farm as separate processes on real Redis and PostgreSQL: revocation across two api processes,
// a worker killed with SIGKILL under load, backpressure at the HTTP door, and a restart that keeps everything.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { verifyEvent } from 'nostr-tools';
import { shardOf } from '../../shared/shard.js';
import { authorizeApp, call, registerUser, rpc } from '../support/client.js';
import {
  baseTestEnv,
  createTestDatabase,
  freePort,
  type TestDatabase,
  migrateDatabase,
  shardNamesOf,
  suiteRedis,
} from '../support/env.js';
import { spawnKeyfarm, stopAllKeyfarms, type KeyfarmProcess } from '../support/processes.js';
import { recordDatabaseKeys } from '../support/stored-keys.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const note = (content: string) => ({ kind: 1, content, tags: [], created_at: Math.floor(Date.now() / 1000) });

async function startApi(env: Record<string, string>, name: string): Promise<{ proc: KeyfarmProcess; base: string }> {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const proc = await spawnKeyfarm('api', { ...env, PORT: String(port) }, { name, ready: { url: `${base}/health` } });
  return { proc, base };
}

function startWorkers(env: Record<string, string>, name: string): Promise<KeyfarmProcess> {
  return spawnKeyfarm('workers', env, { name, ready: { log: /keyfarm started/ } });
}

describe('the farm as processes', () => {
  let db: TestDatabase;
  let env: Record<string, string>;

  before(async () => {
    db = await createTestDatabase();
    env = baseTestEnv({
      DATABASE_URL: db.url,
      SHARD_COUNT: '8',
      LEASE_TTL_MS: '1500',
      JOB_LOCK_MS: '3000',
      RPC_TIMEOUT_MS: '20000',
    });
    await migrateDatabase(db.url);
  });
  after(async () => {
    await stopAllKeyfarms();
    try {
      // Every key the processes held (server-generated ones included) goes to the secret scan.
      if (env) await recordDatabaseKeys(env);
    } finally {
      await db?.drop().catch(() => undefined);
    }
  });

  it('a revocation through one api process is refused at once by another', async () => {
    const a = await startApi(env, 'api-a');
    const b = await startApi(env, 'api-b');
    const w = await startWorkers(env, 'workers-revoke');
    const user = await registerUser(a.base);
    const { access_token: token } = await authorizeApp(a.base, user.session, 'full');
    // Both processes have the token cached before the revocation.
    assert.equal((await rpc(a.base, token, 'sign_event', [note('a')])).status, 200);
    assert.equal((await rpc(b.base, token, 'sign_event', [note('b')])).status, 200);
    const list = await call(a.base, 'GET', '/api/user/sessions', undefined, user.session);
    const revoked = await call(
      a.base,
      'POST',
      '/api/user/sessions/revoke',
      { authorization_id: list.body[0].authorization_id },
      user.session,
    );
    assert.equal(revoked.status, 200);
    const [fromA, fromB] = await Promise.all([
      rpc(a.base, token, 'sign_event', [note('after')]),
      rpc(b.base, token, 'sign_event', [note('after')]),
    ]);
    assert.equal(fromA.status, 403);
    assert.equal(fromB.status, 403);
    await Promise.all([a.proc.stop(), b.proc.stop(), w.stop()]);
  });

  it('answers every request, signed or 503 to retry, never a dropped connection, when one of three workers is killed with SIGKILL under load', async (t) => {
    const api = await startApi(env, 'api-kill');
    const workers = [
      await startWorkers(env, 'worker-1'),
      await startWorkers(env, 'worker-2'),
      await startWorkers(env, 'worker-3'),
    ];
    await sleep(2000); // let the three divide the shards
    const users = await Promise.all(Array.from({ length: 8 }, () => registerUser(api.base)));
    const tokens = await Promise.all(
      users.map(async (u) => (await authorizeApp(api.base, u.session, 'full')).access_token),
    );

    const outcomes: { status: number; ok: boolean }[] = [];
    let running = true;
    const client = async (c: number) => {
      for (let i = 0; running; i++) {
        const token = tokens[(c + i) % tokens.length]!;
        try {
          const res = await rpc(api.base, token, 'sign_event', [note(`load ${c}.${i}`)]);
          outcomes.push({ status: res.status, ok: res.status === 200 && verifyEvent(res.body.result) });
        } catch (_err) {
          outcomes.push({ status: 0, ok: false });
        }
      }
    };
    const clients = Array.from({ length: 16 }, (_, c) => client(c));
    await sleep(1500);
    const before = outcomes.length;
    workers[0]!.kill('SIGKILL');
    await workers[0]!.exited;
    await sleep(6000);
    running = false;
    await Promise.all(clients);

    const statuses = new Map<number, number>();
    for (const o of outcomes) statuses.set(o.status, (statuses.get(o.status) ?? 0) + 1);
    t.diagnostic(`outcomes: ${outcomes.length} (${before} before the kill), statuses ${JSON.stringify([...statuses])}`);
    assert.ok(before > 0, 'load was flowing before the kill');
    const after = outcomes.slice(before);
    assert.ok(after.filter((o) => o.ok).length > 0, 'requests were answered after the kill');
    // Every request got an answer: a valid signature, or a clear refusal; never a dropped connection or a 5xx.
    assert.equal(statuses.get(0) ?? 0, 0, `no dropped connections: ${JSON.stringify([...statuses])}`);
    for (const [status, n] of statuses) assert.ok(status === 200 || status === 503, `status ${status} x${n}`);
    assert.ok(
      outcomes.every((o) => o.status !== 200 || o.ok),
      'every 200 carries a valid signature',
    );
    assert.ok((statuses.get(200) ?? 0) >= outcomes.length * 0.95, `mostly answered: ${JSON.stringify([...statuses])}`);
    await Promise.all([api.proc.stop(), workers[1]!.stop(), workers[2]!.stop()]);
  });

  it('answers 503 with Retry-After at once when a shard is full, and never holds more than the limit', async () => {
    const limit = 4096;
    const small: Record<string, string> = {
      ...env,
      KEY_PREFIX: `${env.KEY_PREFIX}bp`,
      QUEUE_LIMIT: String(limit),
      RPC_TIMEOUT_MS: '120000',
      // The count limit alone (admission by deadline would refuse sooner: no worker drains this shard).
      ADMISSION_MAX_WAIT_MS: '0',
    };
    const api = await startApi(small, 'api-backpressure');
    const user = await registerUser(api.base);
    const { access_token: token } = await authorizeApp(api.base, user.session, 'full');
    const names = shardNamesOf(small);
    const shard = shardOf(user.pubkey, Number(small.SHARD_COUNT));
    const redis = suiteRedis();
    try {
      // No worker runs: the shard fills. 4,200 requests at once: the first 4,096 wait, the rest are refused.
      const started = Date.now();
      const pending = Array.from({ length: limit + 104 }, (_, i) =>
        rpc(api.base, token, 'sign_event', [note(`bp ${i}`)]).then((r) => ({ ...r, at: Date.now() - started })),
      );
      let refused: Awaited<(typeof pending)[number]>[] = [];
      const settled = new Set<number>();
      // A request that fails outright is not an answer; Promise.all(pending) below reports it.
      for (const [i, p] of pending.entries())
        p.then(
          () => settled.add(i),
          () => undefined,
        );
      for (let i = 0; i < 600 && settled.size < 104; i++) await sleep(100);
      refused = await Promise.all([...settled].map((i) => pending[i]!));
      assert.equal(refused.length, 104, 'exactly the overflow was answered while the shard was full');
      for (const r of refused) {
        assert.equal(r.status, 503);
        assert.ok(Number(r.headers.get('retry-after')) >= 1);
      }
      const count = () => redis.hget(names.meter(shard), 'count').then(Number);
      assert.equal(await count(), limit, 'the shard holds exactly the limit');
      const waiting = await redis.xlen(names.jobs(shard));
      assert.ok(waiting <= limit, `waiting jobs ${waiting} <= ${limit}`);
      // A worker arrives: everything that was accepted is answered.
      const w = await startWorkers(small, 'workers-backpressure');
      const all = await Promise.all(pending);
      assert.equal(all.filter((r) => r.status === 200).length, limit);
      assert.equal(all.filter((r) => r.status === 503).length, 104);
      for (let i = 0; i < 50 && (await count()) !== 0; i++) await sleep(100);
      assert.equal(await count(), 0, 'the count drains back to zero');
      await w.stop();
    } finally {
      redis.disconnect();
      await api.proc.stop();
    }
  });

  it('keeps every user, key and authorization across a restart', async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const farmEnv = { ...env, PORT: String(port) };
    let farm = await spawnKeyfarm('all', farmEnv, { name: 'all-before', ready: { url: `${base}/health` } });
    const user = await registerUser(base);
    const { access_token: token } = await authorizeApp(base, user.session, 'messaging');
    const before = await rpc(base, token, 'sign_event', [{ ...note('before'), kind: 14 }]);
    assert.equal(before.status, 200);
    farm.kill('SIGKILL');
    await farm.exited;
    farm = await spawnKeyfarm('all', farmEnv, { name: 'all-after', ready: { url: `${base}/health` } });
    const login = await call(base, 'POST', '/api/auth/login', { email: user.email, password: user.password });
    assert.equal(login.status, 200);
    assert.equal(login.body.pubkey, user.pubkey);
    const afterSign = await rpc(base, token, 'sign_event', [{ ...note('after'), kind: 14 }]);
    assert.equal(afterSign.status, 200);
    assert.equal(afterSign.body.result.pubkey, user.pubkey);
    assert.ok(verifyEvent(afterSign.body.result));
    const sessions = await call(base, 'GET', '/api/user/sessions', undefined, user.session);
    assert.equal(sessions.body.length, 1);
    assert.equal(sessions.body[0].policy, 'messaging');
    await farm.stop();
  });
});
