// Every Redis connection of every role is made here, for a single server (a redis:// URL) or a Redis
// Cluster (REDIS_CLUSTER_NODES): the rest of the code talks to a RedisClient and need not know which.
// On a cluster each shard's keys share one hash slot ({shard-N} in ShardNames), every Lua script touches
// one slot, replies travel over sharded pub/sub (one shard, not a broadcast) and announcements over plain
// pub/sub (a broadcast: every subscriber on every node hears them).
import { Cluster, Redis, ReplyError, type ClusterOptions, type RedisOptions } from 'ioredis';
import { ShardNames } from './shard.js';

/** A connection to a single Redis or to a Redis Cluster. */
export type RedisClient = Redis | Cluster;

export interface RedisClusterNode {
  host: string;
  port: number;
}

/** A Redis Cluster: seed nodes (the rest are discovered) and its password, when it has one. */
export interface RedisClusterTarget {
  clusterNodes: RedisClusterNode[];
  password?: string;
  /** An ACL user of every node (tests); unset: the default user. */
  username?: string;
}

/** Where Redis is: a redis:// URL, or a Redis Cluster. */
export type RedisTarget = string | RedisClusterTarget;

/** "h1:p1, h2:p2" -> nodes (the config schema has checked the shape). */
export function parseClusterNodes(list: string): RedisClusterNode[] {
  return list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      const i = s.lastIndexOf(':');
      return { host: s.slice(0, i), port: Number(s.slice(i + 1)) };
    });
}

/** REDIS_CLUSTER_NODES wins over the URL (REDIS_URL, or the embedded server's). */
export function redisTargetOf(
  settings: { REDIS_CLUSTER_NODES?: string; REDIS_PASSWORD?: string },
  url: string,
): RedisTarget {
  if (!settings.REDIS_CLUSTER_NODES) return url;
  return { clusterNodes: parseClusterNodes(settings.REDIS_CLUSTER_NODES), password: settings.REDIS_PASSWORD };
}

/** Shard names for a farm on `target`: on a cluster, shard tags spread evenly over the slots. */
export function shardNamesFor(prefix: string, target: RedisTarget, shardCount: number): ShardNames {
  return new ShardNames(prefix, typeof target === 'string' ? {} : { spreadOverSlots: shardCount });
}

/**
 * The client's command `name` running `lua`, bound to the client: defined on the client once (ioredis then
 * sends EVALSHA, and the script itself only where Redis does not have it yet). Get it when the client is
 * set up, not on a first call: with auto-pipelining, a command defined while a pipeline of the same tick
 * is open is missing from that pipeline, and ioredis then fails every callback of it.
 */
export function luaCommand<C extends (...args: never[]) => Promise<unknown>>(
  redis: RedisClient,
  name: string,
  numberOfKeys: number,
  lua: string,
): C {
  const r = redis as unknown as Record<string, C | undefined>;
  if (typeof r[name] !== 'function') redis.defineCommand(name, { numberOfKeys, lua });
  return (r[name] as C).bind(redis) as C;
}

/** A Redis error reply's code: its first word (`BUSYGROUP Consumer Group name already exists`); else undefined. */
export function redisReplyCode(err: unknown): string | undefined {
  return err instanceof ReplyError ? (err as Error).message.split(' ', 1)[0] : undefined;
}

export function isCluster(redis: RedisClient): redis is Cluster {
  return redis.isCluster;
}

/**
 * The cluster options for node options `opts`. While a failed master's replica is promoted (a few
 * seconds), commands for its slots are retried on the refreshed slot map rather than failed; a
 * fail-fast connection (no offline queue) still fails them at once while the node is unreachable.
 */
function clusterOptions(target: RedisClusterTarget, opts: RedisOptions): ClusterOptions {
  const { enableAutoPipelining, enableOfflineQueue, enableReadyCheck, lazyConnect, ...nodeOptions } = opts;
  return {
    enableAutoPipelining,
    enableOfflineQueue,
    enableReadyCheck,
    lazyConnect,
    shardedSubscribers: true,
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 200,
    // A dead node's slots move to its replica: learn the new map soon, not at the 5 s default.
    slotsRefreshInterval: 1000,
    redisOptions: { ...nodeOptions, username: target.username, password: target.password },
  };
}

/** A connection for commands. */
export function createRedis(target: RedisTarget, opts: RedisOptions = {}): RedisClient {
  const options: RedisOptions = { lazyConnect: false, enableAutoPipelining: true, ...opts };
  if (typeof target === 'string') return new Redis(target, options);
  return new Cluster(target.clusterNodes, clusterOptions(target, options));
}

/**
 * A command connection for request paths that must answer 503 at once while Redis is unreachable rather
 * than wait for it: no offline queue (a command sent while disconnected fails at once) and no resending
 * after a reconnect (commands in flight when the link drops fail with it). It reconnects by itself.
 * Resolves once connected; check `isUp` before work that needs it.
 */
export async function connectFailFast(
  target: RedisTarget,
  onError: (err: Error) => void,
  opts: RedisOptions = {},
): Promise<RedisClient> {
  const options: RedisOptions = {
    lazyConnect: false,
    enableAutoPipelining: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    ...opts,
  };
  // On a cluster, a command for a dead master's slots fails at once too, rather than being retried
  // until its replica is promoted.
  const redis =
    typeof target === 'string'
      ? createRedis(target, options)
      : new Cluster(target.clusterNodes, {
          ...clusterOptions(target, options),
          retryDelayOnFailover: 0,
          retryDelayOnClusterDown: 0,
        });
  redis.on('error', onError);
  await untilReady(redis);
  // Without an offline queue, a command routed to a node whose own link is still being made fails: wait
  // for every master's link before the first command.
  if (redis instanceof Cluster)
    await Promise.all(
      redis.nodes('master').map((node) => (node.status === 'wait' ? node.connect() : untilReady(node))),
    );
  return redis;
}

/** True while the connection can take commands (no round trip). */
export function isUp(redis: RedisClient | undefined): boolean {
  return redis?.status === 'ready';
}

/** Resolves when the connection is ready (at once if it is); rejects if it is closed for good. */
export function untilReady(redis: RedisClient): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onReady = () => {
      redis.off('end', onEnd);
      resolve();
    };
    const onEnd = () => {
      redis.off('ready', onReady);
      reject(new Error('redis connection closed'));
    };
    redis.once('ready', onReady);
    redis.once('end', onEnd);
  });
}

/** QUIT when Redis answers, else drops the link; either way the connection stops reconnecting. */
export async function closeRedis(redis: RedisClient | undefined): Promise<void> {
  if (!redis || redis.status === 'end') return;
  if (redis.status !== 'ready') return redis.disconnect();
  await redis.quit().then(
    () => undefined,
    () => redis.disconnect(),
  );
}

/**
 * Calls `onLost` when commands in flight may have been lost with their link: the connection closed, or
 * (on a cluster) a node left the cluster's pool, as when a master dies and its replica takes over.
 */
export function onLinkLost(redis: RedisClient, onLost: () => void): void {
  redis.on('close', onLost);
  if (isCluster(redis)) redis.on('-node', onLost);
}
