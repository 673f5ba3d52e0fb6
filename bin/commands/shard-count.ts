// keyfarm shard-count [--set N]: shows the farm's recorded shard count and its shard queues, or changes the
// count (shared/farm/shard-count.ts) while the farm is stopped and its queues are empty.
import { parseArgs } from 'node:util';
import type { Config } from '../../shared/config.js';
import { startEmbeddedServices } from '../../shared/embedded-services.js';
import {
  changeShardCount,
  liveWorkers,
  MAX_SHARD_COUNT,
  MIN_SHARD_COUNT,
  readShardCount,
  shardQueueContents,
  type ShardQueueContents,
} from '../../shared/farm/shard-count.js';
import {
  closeRedis,
  createRedis,
  redisTargetOf,
  shardNamesFor,
  type RedisClient,
  type RedisTarget,
} from '../../shared/redis.js';
import { loadConfigOrExit } from '../runtime.js';
import { commandLogger } from './database.js';

export const SHARD_COUNT_USAGE = `usage: keyfarm shard-count [--set N]
  Prints the farm's recorded shard count (in Redis, under KEY_PREFIX) and what each of its shard queues holds.
  --set N  record N as the farm's shard count. Stop every api, relay-ingest and workers process first: it
           refuses while a workers process is live or a shard queue of the recorded count holds a job
           (start the workers with the old SHARD_COUNT to drain them, stop them, run it again).
           Then start every process with SHARD_COUNT=N.`;

interface CommandRedis {
  redis: RedisClient;
  label: string;
  target: RedisTarget;
  close(): Promise<void>;
}

/** The farm's Redis: REDIS_CLUSTER_NODES, REDIS_URL, or the embedded one under DATA_DIR (stopped after if started here). */
async function openCommandRedis(config: Config): Promise<CommandRedis> {
  let url = config.REDIS_URL ?? '';
  let stopEmbedded = async () => {};
  if (!config.REDIS_CLUSTER_NODES && !url) {
    const embedded = await startEmbeddedServices({
      dataDir: config.DATA_DIR,
      logger: commandLogger(config, 'shard-count'),
      postgres: false,
    });
    url = embedded.redisUrl;
    stopEmbedded = () => embedded.stop();
  }
  const target = redisTargetOf(config, url);
  const label =
    typeof target === 'string'
      ? new URL(target).host
      : `the Redis Cluster at ${target.clusterNodes.map((n) => `${n.host}:${n.port}`).join(',')}`;
  let lastError = '';
  const redis = createRedis(target, { enableAutoPipelining: false, maxRetriesPerRequest: 2 });
  redis.on('error', (err: Error) => {
    lastError = err.message;
  });
  try {
    await redis.ping();
  } catch (err) {
    await closeRedis(redis);
    await stopEmbedded();
    throw new Error(`Redis at ${label} is unreachable: ${lastError || (err as Error).message}`);
  }
  return {
    redis,
    label,
    target,
    async close() {
      await closeRedis(redis);
      await stopEmbedded();
    },
  };
}

function describeQueue(q: ShardQueueContents): string {
  return `shard ${q.shard}: ${q.jobs} job${q.jobs === 1 ? '' : 's'}, ${q.items} request${q.items === 1 ? '' : 's'}`;
}

export async function runShardCount(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { set: { type: 'string' }, help: { type: 'boolean', short: 'h', default: false } },
  });
  if (values.help) {
    process.stdout.write(`${SHARD_COUNT_USAGE}\n`);
    return 0;
  }
  if (positionals.length > 0) throw new Error(`unexpected argument ${positionals[0]}\n${SHARD_COUNT_USAGE}`);
  const to = values.set === undefined ? undefined : Number(values.set);
  if (to !== undefined && (!/^\d+$/.test(values.set!) || to < MIN_SHARD_COUNT || to > MAX_SHARD_COUNT))
    throw new Error(`--set takes a shard count from ${MIN_SHARD_COUNT} to ${MAX_SHARD_COUNT}, got ${values.set}`);

  const config = loadConfigOrExit();
  const prefix = config.KEY_PREFIX;
  const log = (line: string) => process.stderr.write(`shard-count: ${line}\n`);
  const { redis, label, target, close } = await openCommandRedis(config);
  try {
    if (to === undefined) {
      const names = shardNamesFor(prefix, target, config.SHARD_COUNT);
      const recorded = await readShardCount(redis, names);
      const count = recorded ?? config.SHARD_COUNT;
      process.stdout.write(
        recorded === undefined
          ? `no shard count recorded for KEY_PREFIX ${prefix} on ${label} (the first process to start records its SHARD_COUNT); queues of SHARD_COUNT ${count}:\n`
          : `shard count ${recorded} recorded for KEY_PREFIX ${prefix} on ${label}\n`,
      );
      for (const q of await shardQueueContents(redis, shardNamesFor(prefix, target, count), count))
        process.stdout.write(`${describeQueue(q)}\n`);
      process.stdout.write(`live workers processes: ${await liveWorkers(redis, names)}\n`);
      return 0;
    }
    const result = await changeShardCount({ redis, target, prefix, to, fallback: config.SHARD_COUNT });
    switch (result.kind) {
      case 'changed':
        process.stdout.write(`shard count of KEY_PREFIX ${prefix} changed from ${result.from} to ${result.to}\n`);
        log(`start every api, relay-ingest and workers process with SHARD_COUNT=${result.to}`);
        return 0;
      case 'unchanged':
        process.stdout.write(`shard count of KEY_PREFIX ${prefix} is already ${result.count}\n`);
        return 0;
      case 'workers-live':
        log(
          `refused: ${result.live} workers process${result.live === 1 ? ' is' : 'es are'} running with the farm's ${result.from} shards; stop every process of the farm first (a killed one leaves its membership for LEASE_TTL_MS)`,
        );
        return 1;
      case 'busy':
        log(
          `refused: shard queues of the farm's ${result.from} shards still hold work (${result.busy.map(describeQueue).join('; ')}); start the workers with SHARD_COUNT=${result.from} until they are empty, stop them, and run this again`,
        );
        return 1;
      case 'raced':
        log(
          `refused: the farm's shard count changed while its queues were read (now ${result.recorded ?? 'none'}); run this again`,
        );
        return 1;
    }
  } finally {
    await close();
  }
}
