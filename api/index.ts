// The api role: connections, caches and the RPC client around the Fastify app, started and stopped as one.
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Db } from '../database/pool.js';
import type { Config } from '../shared/config.js';
import { KeyStore } from '../shared/custody/key-store.js';
import type { KeyManager } from '../shared/custody/key-manager.js';
import { parseEviction } from '../shared/evictions.js';
import type { PayloadSealer } from '../shared/farm/payload-seal.js';
import { RpcClient } from '../shared/farm/rpc-client.js';
import { watchShards } from '../shared/farm/shard-metrics.js';
import type { Logger } from '../shared/logger.js';
import { watchBroadcastLink } from '../shared/pubsub.js';
import { closeRedis, connectFailFast, createRedis, shardNamesFor, type RedisTarget } from '../shared/redis.js';
import type { ApiContext } from './context.js';
import { buildApi, type BuildHooks } from './server.js';
import { ActingCache } from './services/acting-cache.js';
import { keyPrefetchHinter } from './services/key-prefetch.js';
import { LoginLimiter, loginLimits } from './services/login-limiter.js';
import { createMailer } from './services/mailer.js';

export interface ApiDeps {
  config: Config;
  logger: Logger;
  db: Db;
  redisUrl: RedisTarget;
  keyManager: KeyManager;
  /** Seals RPC calls into jobs and opens their results: the farm payload key. */
  payloadSealer: PayloadSealer;
  version: string;
  hooks?: BuildHooks;
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
  const names = shardNamesFor(config.KEY_PREFIX, deps.redisUrl, config.SHARD_COUNT);
  // Request paths answer 503 at once while Redis is down (login limits, announcements, readiness).
  const redis = await connectFailFast(deps.redisUrl, (err) => logger.warn({ err: err.message }, 'api redis error'));
  const subscriber = createRedis(deps.redisUrl);
  subscriber.on('error', (err) => logger.warn({ err: err.message }, 'api eviction subscriber error'));
  const acting = new ActingCache(deps.db, {
    ttlMs: config.TOKEN_CACHE_TTL_MS,
    lookupTimeoutMs: config.DB_LOOKUP_TIMEOUT_MS,
    onFirstSight:
      config.KEY_PREFETCH_MAX_INFLIGHT > 0 ? keyPrefetchHinter(redis, names, config.SHARD_COUNT, logger) : undefined,
  });

  // A missed eviction must not leave a revoked token usable: while the link is down nothing is cached.
  subscriber.on('message', (_channel: string, message: string) => {
    const e = parseEviction(message);
    if (e) acting.evict(e);
  });
  const unwatchLink = watchBroadcastLink(subscriber, (linked) => acting.setLinked(linked));
  await subscriber.subscribe(names.evictChannel());

  const rpc = new RpcClient({
    redisUrl: deps.redisUrl,
    names,
    shardCount: config.SHARD_COUNT,
    queueLimit: config.QUEUE_LIMIT,
    admissionMaxWaitMs: config.ADMISSION_MAX_WAIT_MS,
    timeoutMs: config.RPC_TIMEOUT_MS,
    instanceId,
    logger,
    sealer: deps.payloadSealer,
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
    loginLimiter: new LoginLimiter(redis, config.KEY_PREFIX, loginLimits(config)),
    mailer: createMailer(config, logger),
    sealer: deps.payloadSealer,
    logger,
    version: deps.version,
  };
  const app = await buildApi(ctx, deps.hooks);
  // Once draining, every response ends its connection, so keep-alive clients go elsewhere.
  let draining = false;
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (draining) reply.header('connection', 'close');
    done(null, payload);
  });
  const unwatchShards = watchShards(redis, names, config.SHARD_COUNT);
  // A burst of new connections (many apps at once, clients reconnecting after a deploy) waits in the
  // kernel's accept queue; past Node's default of 511 the kernel drops them into SYN retries of 1, 3, 7 s.
  // Linux caps this at net.core.somaxconn (4096 by default since 5.4).
  const address = await app.listen({ port: config.PORT, host: config.HOST, backlog: 4096 });
  logger.info({ address, instanceId }, 'api listening');
  if (ctx.mailer.outbox)
    logger.info({ outbox: ctx.mailer.outbox }, 'SMTP_URL unset: mail is written to the outbox folder, not sent');

  return {
    app,
    url: address,
    instanceId,
    async close() {
      unwatchShards();
      // /healthz/ready already says 503 (shared/readiness.ts); serve on while load balancers notice.
      if (config.SHUTDOWN_DELAY_MS > 0) await new Promise((r) => setTimeout(r, config.SHUTDOWN_DELAY_MS));
      draining = true;
      // Stop listening and wait for in-flight requests, up to SHUTDOWN_HTTP_TIMEOUT_MS.
      const cutoff = setTimeout(() => {
        logger.warn(
          { timeoutMs: config.SHUTDOWN_HTTP_TIMEOUT_MS },
          'in-flight requests outlived the shutdown timeout; closing their connections',
        );
        app.server.closeAllConnections();
      }, config.SHUTDOWN_HTTP_TIMEOUT_MS);
      await app.close();
      clearTimeout(cutoff);
      await rpc.close();
      await ctx.mailer.close();
      unwatchLink();
      subscriber.disconnect();
      await closeRedis(redis);
    },
  };
}
