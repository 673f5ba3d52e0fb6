// What a test file needs to run against the suite's PostgreSQL and Redis without meeting other test
// files there: its own database, its own Redis key prefix, its own data dir. `migrateDatabase(db.url)`
// brings a database to the current schema.
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import pg from 'pg';
import type { RedisOptions } from 'ioredis';
import { migrate } from '../../database/migrate.js';
import { createPool } from '../../database/pool.js';
import {
  createRedis,
  isCluster,
  parseClusterNodes,
  type RedisClient,
  type RedisClusterTarget,
  type RedisTarget,
  shardNamesFor,
  untilReady,
} from '../../shared/redis.js';
import type { ShardNames } from '../../shared/shard.js';
import { recordSecret } from './logs.js';
import { TEST_DATA_DIR } from './paths.js';

/**
 * For a server of your own on the standard ports. The embedded servers need a password, which the URLs
 * scripts/test.sh exports carry; to run one test file against them:
 * eval "$(node dist/bin/services.js start --data-dir .data/test --no-fsync)"; export DATABASE_URL REDIS_URL
 */
export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/** The suite's PostgreSQL server (scripts/test.sh exports the embedded one's URL). */
export function databaseUrl(): string {
  return process.env.DATABASE_URL || DEFAULT_DATABASE_URL;
}

export function redisUrl(): string {
  return process.env.REDIS_URL || DEFAULT_REDIS_URL;
}

/**
 * Cluster mode (scripts/test.sh --redis-cluster): the suite's local Redis Cluster, which every test farm
 * and Keyfarm process uses instead of the single Redis. Undefined in the default mode.
 */
export function suiteRedisCluster(): RedisClusterTarget | undefined {
  const nodes = process.env.KEYFARM_TEST_REDIS_CLUSTER_NODES;
  if (!nodes) return undefined;
  return { clusterNodes: parseClusterNodes(nodes), password: process.env.KEYFARM_TEST_REDIS_PASSWORD || undefined };
}

/** The suite's Redis: the cluster in cluster mode, else the single server of REDIS_URL. */
export function suiteRedisTarget(): RedisTarget {
  return suiteRedisCluster() ?? redisUrl();
}

/** The settings naming the suite's cluster for a Keyfarm process (none in the default mode). */
export function suiteRedisClusterEnv(): Record<string, string> {
  const nodes = process.env.KEYFARM_TEST_REDIS_CLUSTER_NODES;
  if (!nodes) return {};
  const password = process.env.KEYFARM_TEST_REDIS_PASSWORD;
  return { REDIS_CLUSTER_NODES: nodes, ...(password ? { REDIS_PASSWORD: password } : {}) };
}

/** A connection to the suite's Redis (a cluster client in cluster mode), for tests that look inside. */
export function suiteRedis(opts: RedisOptions = {}): RedisClient {
  return createRedis(suiteRedisTarget(), { enableAutoPipelining: false, ...opts });
}

/** The shard names of `shardCount` shards on the suite's Redis (spread over the slots on the cluster). */
export function suiteShardNames(prefix: string, shardCount: number): ShardNames {
  return shardNamesFor(prefix, suiteRedisTarget(), shardCount);
}

/** The shard names a Keyfarm of these settings (a Config, or a test env) uses. */
export function shardNamesOf(settings: {
  KEY_PREFIX?: string;
  SHARD_COUNT?: number | string;
  REDIS_CLUSTER_NODES?: string;
}): ShardNames {
  const target = settings.REDIS_CLUSTER_NODES ? { clusterNodes: [] } : redisUrl();
  return shardNamesFor(settings.KEY_PREFIX ?? 'kf', target, Number(settings.SHARD_COUNT ?? 4));
}

/** Every key matching `pattern`: SCAN on the server, or on every master of a cluster. */
export async function scanKeys(redis: RedisClient, pattern: string): Promise<string[]> {
  const keys = new Set<string>();
  // A cluster client knows its masters once it is ready.
  await untilReady(redis);
  const servers = isCluster(redis) ? redis.nodes('master') : [redis];
  for (const server of servers) {
    let cursor = '0';
    do {
      const [next, batch] = await server.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      for (const k of batch) keys.add(k);
    } while (cursor !== '0');
  }
  return [...keys];
}

/** Deletes every key matching `pattern` (one key a command: on a cluster they lie in many slots). */
export async function deleteKeys(redis: RedisClient, pattern: string): Promise<number> {
  const keys = await scanKeys(redis, pattern);
  await Promise.all(keys.map((k) => redis.del(k)));
  return keys.length;
}

function randomId(bytes = 6): string {
  return randomBytes(bytes).toString('hex');
}

export interface TestDatabase {
  name: string;
  url: string;
  /** Drops the database, closing whatever connections are still open on it. */
  drop(): Promise<void>;
}

async function asAdmin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: databaseUrl(), connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** A fresh, empty database `kf_t_<random>` on the server in DATABASE_URL. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `kf_t_${randomId()}`;
  await asAdmin((c) => c.query(`CREATE DATABASE ${name}`));
  const url = new URL(databaseUrl());
  url.pathname = `/${name}`;
  return {
    name,
    url: url.toString(),
    drop: () => asAdmin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined),
  };
}

/** SQLSTATE 57P01: the server ended the backend (here, a drop WITH (FORCE)). */
const ADMIN_SHUTDOWN = '57P01';

/**
 * A pool for a test's own queries. pg-pool's end() returns before its clients' sockets close, so a
 * database dropped WITH (FORCE) right after may still tell an ending client it is terminated (57P01): that
 * is the drop working, not a failure. Any other idle-client error stays an uncaught one and fails the test.
 */
export function testPool(url: string, max?: number, opts?: Parameters<typeof createPool>[2]): pg.Pool {
  const pool = createPool(url, max, opts);
  pool.on('error', (err: Error & { code?: string }) => {
    if (err.code !== ADMIN_SHUTDOWN) throw err;
  });
  return pool;
}

/** Applies every migration to the database at `url` over a pool of its own, then closes it. */
export async function migrateDatabase(url: string): Promise<void> {
  const pool = testPool(url);
  try {
    await migrate(pool);
  } finally {
    await pool.end();
  }
}

/** A Redis KEY_PREFIX no other test file uses. */
export function testKeyPrefix(): string {
  return `kft_${randomId(4)}`;
}

/** A fresh directory .data/test/<random>/ for one Keyfarm process (or a group sharing a master key). */
export function testDataDir(): string {
  const dir = path.join(TEST_DATA_DIR, randomId());
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** A TCP port free on 127.0.0.1 right now, for a Keyfarm process's PORT. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/**
 * Environment for a Keyfarm process under test: the suite's servers (its Redis Cluster in cluster mode), a
 * fresh KEY_PREFIX and DATA_DIR, debug logs, a recorded random ADMIN_PASSWORD, loopback exempt from the
 * request limits, a placeholder service relay. Pass `{ DATABASE_URL: db.url, PORT: ... }` as overrides.
 * Overrides naming a REDIS_URL (and no cluster) mean that single server, in either mode.
 */
export function baseTestEnv(overrides: Record<string, string> = {}): Record<string, string> {
  const ownRedis = 'REDIS_URL' in overrides && !('REDIS_CLUSTER_NODES' in overrides);
  return {
    DATABASE_URL: databaseUrl(),
    REDIS_URL: redisUrl(),
    ...(ownRedis ? {} : suiteRedisClusterEnv()),
    KEY_PREFIX: testKeyPrefix(),
    DATA_DIR: testDataDir(),
    LOG_LEVEL: 'debug',
    HOST: '127.0.0.1',
    ADMIN_PASSWORD: recordSecret(`admin-${randomId(12)}`),
    // Test files register and log in many users from 127.0.0.1; the throttling tests set their own.
    RATE_LIMIT_ALLOWLIST: '127.0.0.0/8,::1/128',
    // A bunker link must name a relay; farms that run relay-ingest name their test relays instead.
    BUNKER_RELAYS: 'ws://127.0.0.1:9',
    ...overrides,
  };
}
