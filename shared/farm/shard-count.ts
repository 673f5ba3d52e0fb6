// The farm's shard count, recorded in Redis. SHARD_COUNT decides which shard a user's work goes to, so every
// process of one farm must use the same one: the first process to start records its SHARD_COUNT, and a
// process whose SHARD_COUNT differs from the record refuses to start. `keyfarm shard-count --set` changes
// the record, only while every shard queue of the recorded count is empty and no workers process is live.
import { readFileSync } from 'node:fs';
import { ConfigSchema } from '../config.js';
import type { Logger } from '../logger.js';
import { closeRedis, createRedis, luaCommand, shardNamesFor, type RedisClient, type RedisTarget } from '../redis.js';
import { ShardNames } from '../shard.js';

const LUA = readFileSync(new URL('./shard-count.lua', import.meta.url), 'utf8');
const COMMAND = 'keyfarmShardCount';

type ShardCountCommand = (key: string, op: string, ...args: string[]) => Promise<unknown>;

/** SHARD_COUNT's bounds (shared/config.ts): a record outside them is not a count this farm wrote. */
const shardCountSchema = ConfigSchema.properties.SHARD_COUNT as unknown as { minimum: number; maximum: number };
export const MIN_SHARD_COUNT = shardCountSchema.minimum;
export const MAX_SHARD_COUNT = shardCountSchema.maximum;

/** Where to read how to change it. */
const HOW_TO_CHANGE = 'docs/RUNBOOK.md, "SHARD_COUNT is fixed per deployment"';

/** This process's SHARD_COUNT is not the one the farm recorded: it must not start. */
export class ShardCountMismatchError extends Error {
  constructor(
    readonly configured: number,
    readonly recorded: number,
    prefix: string,
  ) {
    super(
      `SHARD_COUNT is ${configured} but the farm (KEY_PREFIX ${prefix}) runs ${recorded} shards: set SHARD_COUNT=${recorded}, ` +
        `or change the farm's shard count with every process stopped (keyfarm shard-count --set ${configured}; ${HOW_TO_CHANGE})`,
    );
    this.name = 'ShardCountMismatchError';
  }
}

function command(redis: RedisClient): ShardCountCommand {
  return luaCommand<ShardCountCommand>(redis, COMMAND, 1, LUA);
}

function parseRecord(value: string | null, key: string): number | undefined {
  if (value === null || value === '') return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < MIN_SHARD_COUNT || n > MAX_SHARD_COUNT)
    throw new Error(`the farm's shard count record ${key} holds ${JSON.stringify(value.slice(0, 32))}, not a count`);
  return n;
}

/** The farm's recorded shard count; undefined while none is recorded. */
export async function readShardCount(redis: RedisClient, names: ShardNames): Promise<number | undefined> {
  return parseRecord(await redis.get(names.shardCount()), names.shardCount());
}

/** Records `count` unless a count is recorded (one SET NX GET); returns the recorded count and whether it is ours. */
export async function claimShardCount(
  redis: RedisClient,
  names: ShardNames,
  count: number,
): Promise<{ recorded: number; written: boolean }> {
  const key = names.shardCount();
  const recorded = parseRecord(await redis.set(key, String(count), 'NX', 'GET'), key);
  return recorded === undefined ? { recorded: count, written: true } : { recorded, written: false };
}

export interface ShardCountCheck {
  redis: RedisTarget;
  prefix: string;
  shardCount: number;
  logger: Logger;
}

/**
 * At a process's start, before it routes by shard or owns one: records SHARD_COUNT when the farm has no
 * record, else throws ShardCountMismatchError when it differs. Waits for Redis while it is unreachable,
 * as the roles do.
 */
export async function checkShardCount(opts: ShardCountCheck): Promise<void> {
  const redis = createRedis(opts.redis, { enableAutoPipelining: false, maxRetriesPerRequest: null });
  redis.on('error', (err: Error) => opts.logger.warn({ err: err.message }, 'shard count check: redis error'));
  try {
    const { recorded, written } = await claimShardCount(redis, new ShardNames(opts.prefix), opts.shardCount);
    if (recorded !== opts.shardCount) throw new ShardCountMismatchError(opts.shardCount, recorded, opts.prefix);
    if (written) opts.logger.info({ shardCount: recorded }, "recorded the farm's shard count");
  } finally {
    await closeRedis(redis);
  }
}

/** What one shard's queue holds: stream entries (jobs waiting or running) and the meter's item count. */
export interface ShardQueueContents {
  shard: number;
  jobs: number;
  items: number;
}

/** The queue contents of shards 0..count-1, as named for `count` shards. */
export async function shardQueueContents(redis: RedisClient, names: ShardNames, count: number) {
  return Promise.all(
    Array.from({ length: count }, async (_, shard): Promise<ShardQueueContents> => {
      const [jobs, items] = await Promise.all([redis.xlen(names.jobs(shard)), redis.hget(names.meter(shard), 'count')]);
      return { shard, jobs: Number(jobs), items: Number(items ?? 0) };
    }),
  );
}

/** Workers processes live now (their membership not expired). */
export async function liveWorkers(redis: RedisClient, names: ShardNames): Promise<number> {
  return Number(await command(redis)(names.members(), 'workers'));
}

export type ShardCountChange =
  | { kind: 'changed'; from: number; to: number }
  | { kind: 'unchanged'; count: number }
  /** Some shard of the old count holds work: changing now would strand it. */
  | { kind: 'busy'; from: number; busy: ShardQueueContents[] }
  /** Workers processes are running (with the old count). */
  | { kind: 'workers-live'; from: number; live: number }
  /** The record changed while the queues were read. */
  | { kind: 'raced'; recorded: number | undefined };

export interface ShardCountChangeOptions {
  redis: RedisClient;
  target: RedisTarget;
  prefix: string;
  to: number;
  /** The count the farm ran with when none is recorded (its SHARD_COUNT). */
  fallback: number;
}

/**
 * Sets the farm's shard count to `to`, only while no workers process is live and every shard queue of the
 * recorded count (or, with none recorded, of `fallback`) is empty; the record is replaced only if it is
 * still the one the queues were read for.
 */
export async function changeShardCount(opts: ShardCountChangeOptions): Promise<ShardCountChange> {
  const { redis, to } = opts;
  if (!Number.isInteger(to) || to < MIN_SHARD_COUNT || to > MAX_SHARD_COUNT)
    throw new RangeError(`a shard count is an integer from ${MIN_SHARD_COUNT} to ${MAX_SHARD_COUNT}, got ${to}`);
  const farm = new ShardNames(opts.prefix);
  const recorded = await readShardCount(redis, farm);
  const from = recorded ?? opts.fallback;
  if (from === to && recorded !== undefined) return { kind: 'unchanged', count: to };
  const live = await liveWorkers(redis, farm);
  if (live > 0) return { kind: 'workers-live', from, live };
  const old = shardNamesFor(opts.prefix, opts.target, from);
  const busy = (await shardQueueContents(redis, old, from)).filter((q) => q.jobs > 0 || q.items > 0);
  if (busy.length > 0) return { kind: 'busy', from, busy };
  const [changed, now] = (await command(redis)(
    farm.shardCount(),
    'change',
    recorded?.toString() ?? '',
    String(to),
  )) as [number, string];
  if (Number(changed) !== 1) return { kind: 'raced', recorded: parseRecord(now, farm.shardCount()) };
  return { kind: 'changed', from, to };
}
