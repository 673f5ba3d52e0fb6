// Signing activity is an audit trail: a workers process killed with kill -9 under load must not lose the
// rows of requests it answered. Every answered sign_event is checked, row by row, against signing_activity.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import type { RedisClient } from '../../shared/redis.js';
import { shardOf } from '../../shared/shard.js';
import { activityStreamKey } from '../../workers/activity-stream.js';
import { authorizeApp, registerUser, rpc } from '../support/client.js';
import {
  baseTestEnv,
  createTestDatabase,
  freePort,
  migrateDatabase,
  type TestDatabase,
  shardNamesOf,
  suiteRedis,
} from '../support/env.js';
import { spawnKeyfarm, stopAllKeyfarms } from '../support/processes.js';

const SHARDS = 2;

describe('signing activity through a worker crash', () => {
  let database: TestDatabase;
  let env: Record<string, string>;
  let base: string;
  let redis: RedisClient;
  let db: pg.Client;

  before(async () => {
    database = await createTestDatabase();
    await migrateDatabase(database.url);
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    env = baseTestEnv({
      DATABASE_URL: database.url,
      SHARD_COUNT: String(SHARDS),
      RPC_TIMEOUT_MS: '4000',
      LEASE_TTL_MS: '1500',
      JOB_LOCK_MS: '2000',
      CRYPTO_THREADS: '1',
      ACTIVITY_CLAIM_IDLE_MS: '1000',
      LOG_LEVEL: 'info',
    });
    await spawnKeyfarm('api', { ...env, PORT: String(port) }, { ready: { url: `${base}/healthz/ready` } });
    await Promise.all([1, 2].map(() => spawnKeyfarm('workers', env, { ready: { log: /keyfarm started/ } })));
    redis = suiteRedis();
    db = new pg.Client({ connectionString: database.url });
    await db.connect();
  });

  after(async () => {
    await stopAllKeyfarms();
    await db?.end();
    redis?.disconnect();
    await database?.drop();
  });

  it('kill -9 of the worker signing under load loses no activity row of an answered request', async (t) => {
    const user = await registerUser(base);
    const { access_token: token } = await authorizeApp(base, user.session, 'full');
    const names = shardNamesOf(env);

    const answered: string[] = [];
    let failed = 0;
    let sending = true;
    let n = 0;
    const loops = Array.from({ length: 12 }, async () => {
      while (sending) {
        const res = await rpc(base, token, 'sign_event', [
          { kind: 1, content: `crash ${n++}`, tags: [], created_at: Math.floor(Date.now() / 1000) },
        ]).catch(() => undefined);
        if (res?.status === 200) answered.push(res.body.result.id as string);
        else failed++;
      }
    });
    await new Promise((r) => setTimeout(r, 1500));
    const beforeKill = answered.length;
    // The member signing right now: its lease names its pid (host:pid:random).
    const owner = await redis.get(names.lease(shardOf(user.pubkey, SHARDS)));
    const pid = Number(owner?.split(':')[1]);
    assert.ok(Number.isInteger(pid) && pid > 0, `the shard's owner names its pid: ${owner}`);
    process.kill(pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 3000));
    sending = false;
    await Promise.all(loops);
    assert.ok(beforeKill > 20, `load was signing before the kill (${beforeKill})`);
    assert.ok(answered.length > beforeKill, 'the surviving worker took the shard over and answered');

    // The survivor drains the stream, the dead member's unacknowledged entries included.
    const deadline = Date.now() + 15_000;
    let missing: string[] = answered;
    while (Date.now() < deadline) {
      const { rows } = await db.query<{ event_id: string }>(
        'SELECT event_id FROM signing_activity WHERE event_id = ANY($1)',
        [answered],
      );
      const seen = new Set(rows.map((r) => r.event_id));
      missing = answered.filter((id) => !seen.has(id));
      if (missing.length === 0) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    t.diagnostic(
      `${answered.length} answered (${beforeKill} before the kill), ${failed} not answered 200, ${missing.length} without an activity row`,
    );
    assert.deepEqual(missing, [], 'every answered request has its activity row');
    const {
      rows: [auth],
    } = await db.query<{ activity_count: number }>(
      'SELECT activity_count::int FROM authorizations a JOIN users u ON u.id = a.user_id WHERE u.pubkey = $1',
      [user.pubkey],
    );
    assert.ok(
      auth!.activity_count >= answered.length,
      `the count (${auth!.activity_count}) covers every answered request`,
    );

    // The stream holds ids, kinds, times: never content or secrets; drained, it is empty.
    const left = await redis.xrange(activityStreamKey(env.KEY_PREFIX!), '-', '+');
    for (const [, fields] of left) assert.ok(!fields.join(' ').includes('crash '), 'no content in the stream');
    assert.equal(left.length, 0, 'the stream is drained');
  });
});
