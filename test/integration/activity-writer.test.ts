// The activity writer against real PostgreSQL: a row the database refuses (its authorization deleted
// while the row waited, a value out of range) is dropped alone and counted, while everyone else's
// activity still lands; a passing failure (a lock wait cut short) keeps the rows for the next flush; and
// what cannot be written by shutdown is counted, not lost silently. The stream drain does the same for
// entries of the activity stream, and takes over the entries a dead member had read.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { Db } from '../../database/pool.js';
import { createRedis } from '../../shared/redis.js';
import { ActivityDrain, ActivityStream, activityStreamKey } from '../../workers/activity-stream.js';
import { ActivityWriter } from '../../workers/activity-writer.js';
import { registry } from '../../shared/metrics.js';
import { call, registerUser } from '../support/client.js';
import { startTestFarm, type TestFarm } from '../support/farm.js';
import { testPool } from '../support/env.js';
import { recordSecret, testLogger } from '../support/logs.js';

async function droppedActivity(reason: string): Promise<number> {
  const m = await registry.getSingleMetric('keyfarm_activity_dropped_total')!.get();
  return m.values.filter((v) => v.labels.reason === reason).reduce((s, v) => s + v.value, 0);
}

describe('activity writer', () => {
  let farm: TestFarm;
  let db: Db;
  const logger = testLogger('activity-writer');

  before(async () => {
    farm = await startTestFarm('activity-writer', {}, { api: true });
    db = farm.rt.db;
  });

  after(async () => {
    await farm?.stop();
  });

  /** A new user's bunker authorization; returns its id. */
  async function newAuthorization(): Promise<string> {
    const user = await registerUser(farm.url);
    const res = await call(farm.url, 'POST', '/api/user/bunker/create', { app_name: 'activity test' }, user.session);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    recordSecret(new URL(res.body.bunker_url).searchParams.get('secret')!);
    return res.body.authorization_id as string;
  }

  async function written(authorizationId: string): Promise<{ rows: number; count: number }> {
    const rows = await db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM signing_activity WHERE authorization_id = $1',
      [authorizationId],
    );
    const auth = await db.query<{ activity_count: number }>('SELECT activity_count FROM authorizations WHERE id = $1', [
      authorizationId,
    ]);
    return { rows: rows.rows[0]!.n, count: auth.rows[0]?.activity_count ?? -1 };
  }

  it("drops the rows of a deleted authorization and writes everyone else's", async () => {
    const gone = await newAuthorization();
    const kept = await newAuthorization();
    const writer = new ActivityWriter(db, logger);
    for (let i = 0; i < 3; i++) {
      writer.record({ authorizationId: gone, method: 'sign_event', kind: 1, door: 'http' });
      writer.record({ authorizationId: kept, method: 'sign_event', kind: 1, door: 'http' });
    }
    writer.record({ authorizationId: kept, method: 'get_public_key', door: 'nip46' });
    // The authorization goes (its user deleted the account) while its activity waits to be written.
    await db.query('DELETE FROM authorizations WHERE id = $1', [gone]);
    const refusedBefore = await droppedActivity('refused');
    await writer.flush();
    assert.deepEqual(await written(kept), { rows: 4, count: 4 }, "the other user's activity landed");
    assert.equal(writer.waiting, 0, 'nothing left to retry');
    assert.equal((await droppedActivity('refused')) - refusedBefore, 3, 'the refused rows are counted');
    // The writer is not stuck: later activity lands at the next flush.
    writer.record({ authorizationId: kept, method: 'ping', door: 'http' });
    await writer.flush();
    assert.deepEqual(await written(kept), { rows: 5, count: 5 });
    await writer.close();
  });

  it("drops a row refused for its own value alone; the rest of its authorization's rows land", async () => {
    const auth = await newAuthorization();
    const writer = new ActivityWriter(db, logger);
    writer.record({ authorizationId: auth, method: 'sign_event', kind: 1, door: 'nip46' });
    writer.record({ authorizationId: auth, method: 'sign_event', kind: 2 ** 40, door: 'nip46' }); // past PostgreSQL's integer
    writer.record({ authorizationId: auth, method: 'sign_event', kind: 7, door: 'nip46' });
    const refusedBefore = await droppedActivity('refused');
    await writer.flush();
    assert.deepEqual(await written(auth), { rows: 2, count: 2 });
    assert.equal((await droppedActivity('refused')) - refusedBefore, 1);
    await writer.close();
  });

  it('keeps rows through a passing failure, writes them once it passes, and counts what shutdown leaves', async () => {
    const auth = await newAuthorization();
    // Statements that wait more than 300 ms are cancelled (SQLSTATE 57014): a failure that passes.
    const impatient = testPool(farm.rt.databaseUrl, 2, { statement_timeout: 300 });
    const locker = new pg.Client({ connectionString: farm.rt.databaseUrl });
    await locker.connect();
    try {
      const writer = new ActivityWriter(impatient, logger);
      writer.record({ authorizationId: auth, method: 'ping', door: 'http' });
      writer.record({ authorizationId: auth, method: 'ping', door: 'http' });
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE signing_activity IN ACCESS EXCLUSIVE MODE');
      await writer.flush();
      assert.equal(writer.waiting, 2, 'kept for the next flush');
      await locker.query('COMMIT');
      await writer.flush();
      assert.equal(writer.waiting, 0);
      assert.deepEqual(await written(auth), { rows: 2, count: 2 }, 'written once, not twice');

      await locker.query('BEGIN');
      await locker.query('LOCK TABLE signing_activity IN ACCESS EXCLUSIVE MODE');
      writer.record({ authorizationId: auth, method: 'ping', door: 'http' });
      const shutdownBefore = await droppedActivity('shutdown');
      await writer.close();
      assert.equal((await droppedActivity('shutdown')) - shutdownBefore, 1, 'what shutdown could not write is counted');
      await locker.query('COMMIT');
    } finally {
      await locker.query('ROLLBACK').catch(() => undefined);
      await locker.end();
      await impatient.end();
    }
  });
  it("drains the activity stream: a refused row alone is dropped, a crashed member's entries are taken over, the stream ends empty", async () => {
    const [kept, gone] = [await newAuthorization(), await newAuthorization()];
    await db.query('DELETE FROM authorizations WHERE id = $1', [gone]);
    const key = activityStreamKey(`${farm.config.KEY_PREFIX}-drain`);
    const redis = createRedis(farm.rt.redisUrl);
    const logger = testLogger('activity-drain');
    const stream = new ActivityStream(
      redis,
      key,
      { record: () => assert.fail('no fallback while Redis answers') },
      logger,
    );
    const drains: ActivityDrain[] = [];
    const connections = [redis];
    const drain = (consumer: string) => {
      const connection = createRedis(farm.rt.redisUrl);
      connections.push(connection);
      const d = new ActivityDrain({ db, redis: connection, key, consumer, claimIdleMs: 500, logger, blockMs: 100 });
      drains.push(d);
      return d;
    };
    try {
      // A member that read entries and died before writing them: they stay pending under its name.
      const dead = createRedis(farm.rt.redisUrl);
      connections.push(dead);
      await dead.xgroup('CREATE', key, 'activity-writers', '0', 'MKSTREAM');
      stream.record({ authorizationId: kept, method: 'sign_event', kind: 1, eventId: 'a'.repeat(64), door: 'http' });
      await stream.persist();
      assert.equal(
        (
          (await dead.xreadgroup(
            'GROUP',
            'activity-writers',
            'dead-member',
            'COUNT',
            10,
            'STREAMS',
            key,
            '>',
          )) as unknown[]
        ).length,
        1,
      );
      dead.disconnect();
      stream.record({ authorizationId: gone, method: 'ping', door: 'http' });
      stream.record({ authorizationId: kept, method: 'ping', door: 'nip46' });
      await stream.persist();
      const refusedBefore = await droppedActivity('refused');
      await drain('live-member').start();
      const end = Date.now() + 10_000;
      while (Date.now() < end && (await written(kept)).rows < 2) await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(await written(kept), { rows: 2, count: 2 }, 'the live and the taken-over entries written once');
      const { rows } = await db.query<{ event_id: string | null; kind: number | null }>(
        'SELECT event_id, kind FROM signing_activity WHERE authorization_id = $1 ORDER BY created_at',
        [kept],
      );
      assert.deepEqual(rows, [
        { event_id: 'a'.repeat(64), kind: 1 },
        { event_id: null, kind: null },
      ]);
      assert.equal(
        (await droppedActivity('refused')) - refusedBefore,
        1,
        "the deleted authorization's row dropped and counted",
      );
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(await redis.xlen(key), 0, 'acknowledged entries are deleted');
    } finally {
      await Promise.all(drains.map((d) => d.stop()));
      await redis.del(key);
      // An open connection would keep this file's process, and so the suite, from ending.
      for (const c of connections) c.disconnect();
    }
  });

  it("appends a job's rows as one stream entry; the drain writes them, an earlier version's entry too, and drops a malformed one", async () => {
    const auth = await newAuthorization();
    const key = activityStreamKey(`${farm.config.KEY_PREFIX}-packed`);
    const redis = createRedis(farm.rt.redisUrl);
    const drainLink = createRedis(farm.rt.redisUrl);
    const stream = new ActivityStream(
      redis,
      key,
      { record: () => assert.fail('no fallback while Redis answers') },
      logger,
    );
    const drain = new ActivityDrain({
      db,
      redis: drainLink,
      key,
      consumer: 'packed',
      claimIdleMs: 500,
      logger,
      blockMs: 100,
    });
    try {
      await redis.xgroup('CREATE', key, 'activity-writers', '0', 'MKSTREAM');
      for (let i = 0; i < 5; i++)
        stream.record({
          authorizationId: auth,
          method: 'sign_event',
          kind: i,
          eventId: String(i).repeat(64),
          door: 'http',
        });
      await stream.persist();
      assert.equal(await redis.xlen(key), 1, 'five rows, one entry: one command per job, not per request');
      // One row field by field, as the version before packing wrote it.
      await redis.xadd(key, '*', 'a', auth, 'm', 'ping', 'd', 'nip46', 't', String(Date.now()));
      // Hostile or broken entries: not JSON, a row of the wrong shape, an unknown door.
      await redis.xadd(key, '*', 'rows', '{not json');
      await redis.xadd(key, '*', 'rows', JSON.stringify([[auth, 'ping']]));
      await redis.xadd(key, '*', 'rows', JSON.stringify([[auth, 'ping', 'smtp', Date.now(), null, null]]));
      await drain.start();
      const end = Date.now() + 10_000;
      while (Date.now() < end && ((await written(auth)).rows < 6 || (await redis.xlen(key)) > 0))
        await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(await written(auth), { rows: 6, count: 6 }, 'the packed rows and the old entry, once each');
      const { rows } = await db.query<{ kind: number | null; door: string }>(
        'SELECT kind, door FROM signing_activity WHERE authorization_id = $1 ORDER BY kind NULLS LAST',
        [auth],
      );
      assert.deepEqual(
        rows.map((r) => r.kind),
        [0, 1, 2, 3, 4, null],
      );
      assert.equal(rows[5]!.door, 'nip46');
      assert.equal(await redis.xlen(key), 0, 'malformed entries are acknowledged and deleted, not retried forever');
    } finally {
      await drain.stop();
      await redis.del(key);
      redis.disconnect();
      drainLink.disconnect();
    }
  });
});
