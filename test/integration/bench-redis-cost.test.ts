// The bench's Redis cost per request (bench/redis-cost.ts) against a real Redis: a command a Lua script
// runs counts as a command (as the baseline was taken), the INFO reads themselves do not, jobs are
// the replies published, and the idle rate is taken out of the per-request figures.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { costBetween, readCounters, sumCounters } from '../../bench/redis-cost.js';

describe('bench: Redis cost per request', () => {
  let redis: Redis;

  before(() => {
    redis = new Redis(process.env.REDIS_URL!);
  });

  after(() => redis.disconnect());

  it('counts commands scripts run, jobs by replies, and the CPU Redis spent', async () => {
    const key = `bench-cost-test:${process.pid}`;
    const start = await readCounters(redis);
    // Two "requests" in one "job": a script running three commands, two plain commands, one reply.
    await redis.eval(
      "redis.call('SET', KEYS[1], 'a'); redis.call('GET', KEYS[1]); redis.call('DEL', KEYS[1]); return 1",
      1,
      key,
    );
    await redis.set(key, 'b');
    await redis.del(key);
    await redis.publish(`${key}:reply`, 'x');
    const end = await readCounters(redis);
    const cost = costBetween(start, end, 2);
    // 1 EVAL + 3 inside + SET + DEL + PUBLISH = 7 commands for 2 requests. Other clients of the shared
    // test Redis may add some: never fewer.
    assert.ok(cost.commandsPerRequest >= 3.5, `commands per request ${cost.commandsPerRequest}`);
    assert.ok(cost.commandsPerRequest < 20, `INFO reads are not counted: ${cost.commandsPerRequest}`);
    assert.ok(cost.jobs >= 1 && cost.itemsPerJob <= 2);
    assert.ok(cost.cpuUsPerRequest > 0);
    const evalRow = cost.perCommand.find((c) => c.command === 'eval');
    assert.equal(evalRow?.callsPerRequest, 0.5);
  });

  it('takes the idle rate out, and adds up the counters of several servers', () => {
    const before = { commands: 100, cpuUs: 1_000, byCommand: { publish: { calls: 10, usec: 5 } } };
    const after = { commands: 1_103, cpuUs: 21_000, byCommand: { publish: { calls: 20, usec: 9 } } };
    const cost = costBetween(before, after, 100, 1, {
      rate: { seconds: 5, commandsPerS: 50, cpuUsPerS: 1_000 },
      wallS: 2,
    });
    assert.equal(cost.commandsPerRequest, 10);
    assert.equal(cost.cpuUsPerRequest, 200);
    assert.equal(cost.jobs, 10);
    assert.equal(cost.itemsPerJob, 10);
    assert.deepEqual(cost.marginal, {
      commandsPerRequest: 9,
      cpuUsPerRequest: 180,
      commandsPerJob: 90,
      cpuUsPerJob: 1800,
    });
    const both = sumCounters([before, after]);
    assert.deepEqual(both, { commands: 1_203, cpuUs: 22_000, byCommand: { publish: { calls: 30, usec: 14 } } });
  });
});
