// The api role: connections, caches and the RPC client around the Fastify app, started and stopped as one.
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Db } from '../database/pool.js';
import type { Config } from '../shared/config.js';
import { KeyStore } from '../shared/custody/key-store.js';
import type { KeyManager } from '../shared/custody/key-manager.js';
import { parseEviction } from '../shared/evictions.js';
import { RpcClient } from '../shared/farm/rpc-client.js';
import { watchShards } from '../shared/farm/shard-metrics.js';
import type { Logger } from '../shared/logger.js';
import { createRedis } from '../shared/redis.js';
import { ShardNames } from '../shared/shard.js';
import type { ApiContext } from './context.js';
import { buildApi } from './server.js';
import { ActingCache } from './services/acting-cache.js';
import { LoginLimiter } from './services/login-limiter.js';

export interface ApiDeps {
  config: Config;
  logger: Logger;
  db: Db;
  redisUrl: string;
  keyManager: KeyManager;
  version: string;
}

export interface RunningApi {
  app: FastifyInstance;
  url: string;
  instanceId: string;
  close(): Promise<void>;
}

export async function startApi(deps: ApiDeps): Promise<RunningApi> {
  const { config, logger } = deps;
  const instanceId = `api-${randomBytes(6).toString('hex')}`;
  const names = new ShardNames(config.KEY_PREFIX);
  const redis = createRedis(deps.redisUrl);
  const subscriber = createRedis(deps.redisUrl);
  const acting = new ActingCache(deps.db);

  // A missed eviction must not leave a revoked token usable: when the link drops, forget everything.
  subscriber.on('message', (_channel: string, message: string) => {
    const e = parseEviction(message);
    if (e) acting.evict(e);
  });
  subscriber.on('ready', () => acting.clear());
  await subscriber.subscribe(names.evictChannel());

  const rpc = new RpcClient({
    redisUrl: deps.redisUrl,
    names,
    shardCount: config.SHARD_COUNT,
    queueLimit: config.QUEUE_LIMIT,
    timeoutMs: config.RPC_TIMEOUT_MS,
    instanceId,
    logger,
  });
  await rpc.start();

  const ctx: ApiContext = {
    config,
    db: deps.db,
    redis,
    names,
    keyStore: new KeyStore(deps.keyManager),
    rpc,
    acting,
    loginLimiter: new LoginLimiter(redis, config.KEY_PREFIX),
    logger,
    version: deps.version,
  };
  const app = await buildApi(ctx);
  const address = await app.listen({ port: config.PORT, host: config.HOST });
  const unwatchShards = watchShards(redis, names, config.SHARD_COUNT);
  logger.info({ address, instanceId }, 'api listening');

  return {
    app,
    url: address,
    instanceId,
    async close() {
      unwatchShards();
      await app.close();
      await rpc.close();
      subscriber.disconnect();
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
