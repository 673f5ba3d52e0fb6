// The farm's shard count is recorded in Redis by its first process and enforced on every other: a process
// started with another SHARD_COUNT refuses to start (against the real farm's Redis, as processes), two
// processes racing with different counts leave exactly one recorded, and `keyfarm shard-count --set` changes
// it only with no workers live and every shard queue of the old count empty.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { verifyEvent } from 'nostr-tools';
import { claimShardCount, ShardCountMismatchError } from '../../shared/farm/shard-count.js';
import { shardOf } from '../../shared/shard.js';
import { authorizeApp, registerUser, rpc } from '../support/client.js';
import {
  baseTestEnv,
  createTestDatabase,
  freePort,
  migrateDatabase,
  suiteRedis,
  suiteShardNames,
  testKeyPrefix,
  type TestDatabase,
} from '../support/env.js';
import { startTestFarm } from '../support/farm.js';
import { spawnKeyfarm, stopAllKeyfarms, type KeyfarmProcess } from '../support/processes.js';
import { recordDatabaseKeys } from '../support/stored-keys.js';
import { waitFor } from '../support/wait.js';
import type { RedisClient } from '../../shared/redis.js';

const note = (content: string) => ({ kind: 1, content, tags: [], created_at: Math.floor(Date.now() / 1000) });

describe("the farm's shard count", () => {
  let db: TestDatabase;
  let env: Record<string, string>;
  let redis: RedisClient;

  before(async () => {
    db = await createTestDatabase();
    await migrateDatabase(db.url);
    env = baseTestEnv({ DATABASE_URL: db.url, SHARD_COUNT: '4', RPC_TIMEOUT_MS: '1000', LEASE_TTL_MS: '1500' });
    redis = suiteRedis();
  });
  after(async () => {
    await stopAllKeyfarms();
    redis?.disconnect();
    try {
      if (env) await recordDatabaseKeys(env);
    } finally {
      await db?.drop().catch(() => undefined);
    }
  });

  /** Settings of a farm of its own (a fresh KEY_PREFIX) on the file's database. */
  const farmEnv = (shards: number, prefix: string) => ({ ...env, KEY_PREFIX: prefix, SHARD_COUNT: String(shards) });
  const recorded = (prefix: string) => redis.get(suiteShardNames(prefix, 1).shardCount());

  async function startApi(e: Record<string, string>, name: string): Promise<{ proc: KeyfarmProcess; base: string }> {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const proc = await spawnKeyfarm('api', { ...e, PORT: String(port) }, { name, ready: { url: `${base}/health` } });
    return { proc, base };
  }
  const startWorkers = (e: Record<string, string>, name: string) =>
    spawnKeyfarm('workers', e, { name, ready: { log: /keyfarm started/ } });

  /** Runs `keyfarm shard-count ARGS` to its end: its exit code and output. */
  async function shardCountCli(
    e: Record<string, string>,
    args: string[],
  ): Promise<{ code: number | null; out: string }> {
    const proc = await spawnKeyfarm('shard-count', e, { name: 'shard-count', args });
    const { code } = await proc.exited;
    return { code, out: proc.output() };
  }

  /** A process that must refuse to start: its exit code and the lines naming SHARD_COUNT. */
  async function refusal(role: string, e: Record<string, string>): Promise<{ code: number | null; lines: string[] }> {
    const proc = await spawnKeyfarm(role, { ...e, PORT: String(await freePort()) }, { name: `${role}-refused` });
    const { code } = await proc.exited;
    return {
      code,
      lines: proc
        .output()
        .split('\n')
        .filter((l) => l.includes('SHARD_COUNT is')),
    };
  }

  it('a process started with another SHARD_COUNT than the recorded one refuses to start, naming both; the record stays', async () => {
    const prefix = testKeyPrefix();
    assert.equal(await recorded(prefix), null, 'a new farm has no record');
    const workers = await startWorkers(farmEnv(4, prefix), 'workers-4');
    assert.equal(await recorded(prefix), '4', 'the first process recorded its SHARD_COUNT');

    // Every role, as its own process, misconfigured with 3 shards against the farm's 4.
    const refused = await Promise.all(
      ['api', 'relay-ingest', 'workers'].map((role) => refusal(role, farmEnv(3, prefix))),
    );
    for (const { code, lines } of refused) {
      assert.equal(code, 1, 'the process exits with an error');
      assert.equal(lines.length, 1, `one line says why: ${lines.join(' | ')}`);
      assert.match(lines[0]!, /SHARD_COUNT is 3 but the farm \(KEY_PREFIX \w+\) runs 4 shards: set SHARD_COUNT=4/);
      assert.match(lines[0]!, /keyfarm shard-count --set 3; docs\/RUNBOOK\.md/);
    }
    // In-process too (the test farm's start): the error, and nothing started.
    await assert.rejects(
      startTestFarm('shard-count-mismatch', { KEY_PREFIX: prefix, SHARD_COUNT: '3' }, { api: true, workers: true }),
      (err: Error) => err instanceof ShardCountMismatchError && err.configured === 3 && err.recorded === 4,
    );
    assert.equal(await recorded(prefix), '4', 'the record is unchanged');
    assert.equal(workers.hasExited(), false, 'the farm keeps running');
    await workers.stop();
  });

  it('two processes started at the same moment with different counts: exactly one count is recorded, the other refuses', async () => {
    const prefix = testKeyPrefix();
    const procs = await Promise.all(
      [2, 3].map((n) => spawnKeyfarm('workers', farmEnv(n, prefix), { name: `workers-race-${n}` })),
    );
    const outcomes = await Promise.all(
      procs.map((p) =>
        Promise.race([
          p.waitForLog(/keyfarm started/).then(
            () => 'started' as const,
            () => 'exited' as const,
          ),
          p.exited.then(() => 'exited' as const),
        ]),
      ),
    );
    const record = await recorded(prefix);
    assert.deepEqual([...outcomes].sort(), ['exited', 'started'], `one starts, one refuses: ${outcomes.join(', ')}`);
    const winner = outcomes.indexOf('started');
    const loser = procs[1 - winner]!;
    assert.equal(record, String([2, 3][winner]), "the recorded count is the started process's");
    assert.equal((await loser.exited).code, 1);
    assert.match(
      loser.output(),
      new RegExp(`SHARD_COUNT is ${[2, 3][1 - winner]} but the farm .* runs ${record} shards`),
    );
    await procs[winner]!.stop();

    // Many claims at once, each on its own connection, each with its own count: one write wins.
    const racePrefix = testKeyPrefix();
    const names = suiteShardNames(racePrefix, 1);
    const conns = Array.from({ length: 12 }, () => suiteRedis());
    try {
      const claims = await Promise.all(conns.map((c, i) => claimShardCount(c, names, i + 1)));
      const written = claims.filter((c) => c.written);
      assert.equal(written.length, 1, 'exactly one claim writes');
      const won = written[0]!.recorded;
      for (const c of claims) assert.equal(c.recorded, won, 'every claimant reads the one recorded count');
      assert.equal(await redis.get(names.shardCount()), String(won));
    } finally {
      for (const c of conns) c.disconnect();
    }
  });

  it('keyfarm shard-count --set refuses while a shard holds a job or a worker runs, then changes it; the farm runs on the new count', async () => {
    const prefix = testKeyPrefix();
    const old = farmEnv(4, prefix);
    const oldNames = suiteShardNames(prefix, 4);
    // An api with no workers: a request is queued in its user's shard and stays there.
    const api = await startApi(old, 'api-4');
    const user = await registerUser(api.base);
    const token = (await authorizeApp(api.base, user.session, 'full')).access_token;
    const shard = shardOf(user.pubkey, 4);
    const held = () => Promise.all([redis.xlen(oldNames.jobs(shard)), redis.hget(oldNames.meter(shard), 'count')]);
    const timedOut = await rpc(api.base, token, 'sign_event', [note('queued')]);
    assert.equal(timedOut.status, 504, 'no worker answered');
    assert.deepEqual(await held(), [1, '1'], 'the job waits in its shard');
    await api.proc.stop();

    const busy = await shardCountCli(farmEnv(2, prefix), ['--set', '2']);
    assert.equal(busy.code, 1, busy.out);
    assert.match(
      busy.out,
      new RegExp(`refused: shard queues of the farm's 4 shards still hold work \\(shard ${shard}: 1 job, 1 request\\)`),
    );
    assert.equal(await recorded(prefix), '4');

    // The runbook's way: the workers of the old count drain the queues.
    const workers = await startWorkers(old, 'workers-drain');
    await waitFor(async () => (await held())[0] === 0 && (await held())[1] === '0', 15_000, 'the shard drained');
    const live = await shardCountCli(farmEnv(2, prefix), ['--set', '2']);
    assert.equal(live.code, 1, live.out);
    assert.match(live.out, /refused: 1 workers process is running with the farm's 4 shards/);
    assert.equal(await recorded(prefix), '4');
    await workers.stop();

    const changed = await shardCountCli(farmEnv(2, prefix), ['--set', '2']);
    assert.equal(changed.code, 0, changed.out);
    assert.match(changed.out, /changed from 4 to 2/);
    assert.equal(await recorded(prefix), '2');
    const shown = await shardCountCli(old, []);
    assert.match(shown.out, /^shard count 2 recorded for KEY_PREFIX/m);

    // The old count is now the wrong one; the new one starts and signs.
    const stale = await refusal('api', old);
    assert.equal(stale.code, 1);
    assert.match(stale.lines[0] ?? '', /SHARD_COUNT is 4 but the farm \(KEY_PREFIX \w+\) runs 2 shards/);
    const next = await startApi(farmEnv(2, prefix), 'api-2');
    await startWorkers(farmEnv(2, prefix), 'workers-2');
    const signed = await rpc(next.base, token, 'sign_event', [note('after the change')]);
    assert.equal(signed.status, 200);
    assert.ok(verifyEvent(signed.body.result));
    assert.equal(await recorded(prefix), '2');
  });
});
