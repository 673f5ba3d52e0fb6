// A worker rejoining the farm (after a restart) takes its shards back one at a time, each within tens of
// milliseconds of its release: a rejoin never leaves several shards at once without a worker.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createRedis } from '../../shared/redis.js';
import { startWorkers, type Workers } from '../../workers/index.js';
import { shardOwners } from '../../workers/shard-leases.js';
import {
  FakeCrypto,
  FakeKeyLoader,
  REDIS_TARGET,
  deleteByPrefix,
  noActivity,
  quietLogger,
  testSealer,
  uniquePrefix,
  waitFor,
  workersConfig,
} from './farm-fixtures.js';
import { suiteShardNames } from '../support/env.js';

const SHARDS = 8;
/** Rounds every second: a shard released just after one would wait most of it for the next. */
const TTL = 3000;
const logger = quietLogger();
const prefix = uniquePrefix();
const names = suiteShardNames(prefix, SHARDS);
const redis = createRedis(REDIS_TARGET);
const closers: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c().catch(() => undefined);
  await redis.quit();
  await deleteByPrefix(prefix);
});

async function member(id: string): Promise<Workers> {
  const w = await startWorkers({
    config: workersConfig(prefix, { SHARD_COUNT: SHARDS, LEASE_TTL_MS: TTL }),
    logger,
    keyLoader: new FakeKeyLoader(),
    crypto: new FakeCrypto(),
    activity: noActivity,
    sealer: testSealer,
    redisUrl: REDIS_TARGET,
    memberId: id,
  });
  closers.push(() => w.stop());
  return w;
}

test('a rejoining member takes its shards back one at a time, each within 300 ms of its release', async (t) => {
  const a = await member('member-a');
  await waitFor('a owns every shard', () => a.ownedShards().length === SHARDS);
  const moving = Array.from({ length: SHARDS }, (_, s) => s).filter(
    (s) => shardOwners(['member-a', 'member-b'], SHARDS)[s] === 'member-b',
  );
  assert.ok(moving.length >= 2, `an even split moves half the shards to b (${moving})`);

  let handingOver = 0;
  let mostAtOnce = 0;
  const releasedAt = new Map<number, number>();
  a.leases.on('handingOver', (_shard, reason) => {
    if (reason !== 'rebalance') return;
    handingOver++;
    mostAtOnce = Math.max(mostAtOnce, handingOver);
  });
  a.leases.on('released', (shard, reason) => {
    if (reason !== 'rebalance') return;
    handingOver--;
    releasedAt.set(shard, performance.now());
  });
  const b = await member('member-b');
  // b's first round may already take a shard a has just released, before a listener can be attached:
  // its take is dated when b started, a bound the real take precedes.
  const startedAt = performance.now();
  const acquiredAt = new Map<number, number>(b.ownedShards().map((s) => [s, startedAt]));
  b.leases.on('acquired', (shard) => acquiredAt.set(shard, performance.now()));
  await waitFor('b owns its share', () => b.ownedShards().length === moving.length, 20_000);
  // On a cluster, a's release and b's take can be heard in either order (a gap at or below 0).
  const gaps = moving
    .filter((s) => releasedAt.has(s) && acquiredAt.has(s))
    .map((s) => Math.round(acquiredAt.get(s)! - releasedAt.get(s)!));
  t.diagnostic(
    `${moving.length} shards moved; at most ${mostAtOnce} at once; release-to-take gaps ${gaps.join(', ')} ms`,
  );
  assert.deepEqual(b.ownedShards(), moving);
  assert.equal(mostAtOnce, 1, 'one shard handed over at a time');
  assert.equal(gaps.length, moving.length, 'every moved shard was released by a and taken by b');
  assert.ok(
    gaps.every((g) => g < 300),
    `each shard without a worker under 300 ms (${gaps})`,
  );
  const owners = await Promise.all(moving.map((s) => redis.get(names.lease(s))));
  assert.ok(owners.every((o) => o === 'member-b'));
});
