// The activity writer against real PostgreSQL: a row the database refuses (its authorization deleted
// while the row waited, a value out of range) is dropped alone and counted, while everyone else's
// activity still lands; a passing failure (a lock wait cut short) keeps the rows for the next flush; and
// what cannot be written by shutdown is counted, not lost silently.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createPool, type Db } from '../../database/pool.js';
import { ActivityWriter } from '../../workers/activity-writer.js';
import { registry } from '../../shared/metrics.js';
import { call, registerUser } from '../support/client.js';
import { startTestFarm, type TestFarm } from '../support/farm.js';
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
    const rows = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM signing_activity WHERE authorization_id = $1', [authorizationId]);
    const auth = await db.query<{ activity_count: number }>('SELECT activity_count FROM authorizations WHERE id = $1', [authorizationId]);
    return { rows: rows.rows[0]!.n, count: auth.rows[0]?.activity_count ?? -1 };
  }

  it('drops the rows of a deleted authorization and writes everyone else\'s', async () => {
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
    assert.deepEqual(await written(kept), { rows: 4, count: 4 }, 'the other user\'s activity landed');
    assert.equal(writer.waiting, 0, 'nothing left to retry');
    assert.equal((await droppedActivity('refused')) - refusedBefore, 3, 'the refused rows are counted');
    // The writer is not stuck: later activity lands at the next flush.
    writer.record({ authorizationId: kept, method: 'ping', door: 'http' });
    await writer.flush();
    assert.deepEqual(await written(kept), { rows: 5, count: 5 });
    await writer.close();
  });

  it('drops a row refused for its own value alone; the rest of its authorization\'s rows land', async () => {
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
    const impatient = createPool(farm.rt.databaseUrl, 2, { statement_timeout: 300 });
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
});
