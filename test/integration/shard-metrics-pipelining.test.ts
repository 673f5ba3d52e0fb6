// The per-shard metrics script on an auto-pipelined connection that is busy: a scrape whose script was
// defined mid-tick used to be missing from the tick's open pipeline, and ioredis then crashed the process.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createRedis } from '../../shared/redis.js';
import { readShardStates, watchShards } from '../../shared/farm/shard-metrics.js';
import { ShardNames } from '../../shared/shard.js';
import { suiteRedisTarget, testKeyPrefix } from '../support/env.js';

const redis = createRedis(suiteRedisTarget());
after(() => redis.quit());

test('a scrape in the same tick as other commands on a watched connection reads every shard', async () => {
  const names = new ShardNames(testKeyPrefix());
  const unwatch = watchShards(redis, names, 4);
  try {
    await redis.ping();
    const crashes: unknown[] = [];
    const onCrash = (err: unknown) => crashes.push(err);
    process.on('uncaughtException', onCrash);
    try {
      // An auto-pipeline is open for this tick before the scrape's script call joins it.
      const busy = redis.get(`${names.prefix}:x`);
      const states = await readShardStates(redis, names, 4);
      await busy;
      assert.deepEqual(
        states.map((s) => [s.shard, s.items, s.hasOwner]),
        [
          [0, 0, false],
          [1, 0, false],
          [2, 0, false],
          [3, 0, false],
        ],
      );
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('uncaughtException', onCrash);
    }
    assert.deepEqual(crashes, []);
  } finally {
    unwatch();
  }
});
