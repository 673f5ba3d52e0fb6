// Per-shard gauges read from Redis at scrape time, for every shard whether or not this process owns it
// (an unowned shard is the one whose queue grows): items waiting or running, the age of the oldest job
// (the first entry of the shard's stream), and whether a worker holds the shard's lease. Processes of one farm read the same state, so dashboards take max by (shard).
import { readFileSync } from 'node:fs';
import { luaCommand, type RedisClient } from '../redis.js';
import { withDeadline } from '../deadline.js';
import { addScrapeHook, metrics } from '../metrics.js';
import type { ShardNames } from '../shard.js';

const LUA = readFileSync(new URL('./shard-metrics.lua', import.meta.url), 'utf8');
const COMMAND = 'keyfarmShardMetrics';

type ShardStateCommand = (meter: string, jobs: string, lease: string) => Promise<[number, number, number]>;

export interface ShardState {
  shard: number;
  /** Items waiting or running (the shard's count). */
  items: number;
  /** Seconds since the oldest job waiting or running was added; 0 when there is none. */
  oldestJobAgeSeconds: number;
  hasOwner: boolean;
}

/** Reads the state of every shard, one script call per shard (pipelined by the connection). */
export function readShardStates(redis: RedisClient, names: ShardNames, shardCount: number): Promise<ShardState[]> {
  const command = luaCommand<ShardStateCommand>(redis, COMMAND, 3, LUA);
  const now = Date.now();
  return Promise.all(
    Array.from({ length: shardCount }, async (_, shard): Promise<ShardState> => {
      const [items, oldest, owned] = await command(names.meter(shard), names.jobs(shard), names.lease(shard));
      return {
        shard,
        items: Number(items),
        oldestJobAgeSeconds: oldest > 0 ? Math.max(0, now - oldest) / 1000 : 0,
        hasOwner: owned === 1,
      };
    }),
  );
}

/** Under the scrape's own limit, so a hanging Redis empties the gauges instead of leaving them stale. */
const READ_TIMEOUT_MS = 800;

function resetShardGauges(): void {
  metrics.queueDepth.reset();
  metrics.queueOldestJobAge.reset();
  metrics.shardHasOwner.reset();
}

/** Per key prefix: the connections of the roles watching it (any that is up will do) and the hook. */
const watched = new Map<string, { connections: Set<RedisClient>; remove: () => void }>();

/**
 * Fills keyfarm_queue_depth, keyfarm_queue_oldest_job_age_seconds and keyfarm_shard_has_owner at each
 * scrape. Roles of one process share one watch per key prefix; the returned function ends this role's use.
 */
export function watchShards(redis: RedisClient, names: ShardNames, shardCount: number): () => void {
  let entry = watched.get(names.prefix);
  if (!entry) {
    const connections = new Set<RedisClient>();
    const remove = addScrapeHook(async () => {
      const conn = [...connections].find((c) => c.status === 'ready') ?? [...connections][0];
      try {
        if (!conn) throw new Error('no connection');
        for (const s of await withDeadline(
          readShardStates(conn, names, shardCount),
          READ_TIMEOUT_MS,
          'reading shard states',
        )) {
          const shard = String(s.shard);
          metrics.queueDepth.set({ shard }, s.items);
          metrics.queueOldestJobAge.set({ shard }, s.oldestJobAgeSeconds);
          metrics.shardHasOwner.set({ shard }, s.hasOwner ? 1 : 0);
        }
      } catch {
        // Redis unreachable: no per-shard series rather than stale ones (readiness reports Redis).
        resetShardGauges();
      }
    });
    entry = { connections, remove };
    watched.set(names.prefix, entry);
  }
  const mine = entry;
  // Defined when a connection starts being watched, not at the first scrape (luaCommand).
  luaCommand<ShardStateCommand>(redis, COMMAND, 3, LUA);
  mine.connections.add(redis);
  return () => {
    if (!mine.connections.delete(redis) || mine.connections.size > 0) return;
    mine.remove();
    if (watched.get(names.prefix) === mine) watched.delete(names.prefix);
    resetShardGauges();
  };
}
