// The embedded default: with DATABASE_URL and REDIS_URL unset, Keyfarm runs its own PostgreSQL and Redis
// with their data under DATA_DIR (<dataDir>/postgres, <dataDir>/redis), on loopback ports remembered in
// their config files there. A second start on the same data dir reuses the running servers.
import type { Logger } from './logger.js';
import { removePostgresData, startPostgres, stopPostgres } from './embedded/postgres.js';
import { removeRedisData, startRedis, stopRedis, type EmbeddedServer } from './embedded/redis.js';

export { MissingBinaryError } from './embedded/binaries.js';

export interface EmbeddedServicesOptions {
  dataDir: string;
  logger?: Logger;
  /** Start Redis (default true). When false, `redisUrl` is ''. */
  redis?: boolean;
  /** Start PostgreSQL (default true). When false, `databaseUrl` is ''. */
  postgres?: boolean;
  /** False skips PostgreSQL's fsync: for throwaway test data only. Default true. */
  durable?: boolean;
}

export interface EmbeddedServices {
  databaseUrl: string;
  redisUrl: string;
  /** Stops the servers this call started; servers it found running are left to their owner. */
  stop(): Promise<void>;
}

export async function startEmbeddedServices(opts: EmbeddedServicesOptions): Promise<EmbeddedServices> {
  const wanted = {
    postgres: opts.postgres ?? true,
    redis: opts.redis ?? true,
  };
  const [postgres, redis] = await Promise.allSettled([
    wanted.postgres ? startPostgres(opts) : Promise.resolve(undefined),
    wanted.redis ? startRedis(opts) : Promise.resolve(undefined),
  ]);
  const started = [postgres, redis]
    .filter((r): r is PromiseFulfilledResult<EmbeddedServer | undefined> => r.status === 'fulfilled')
    .map((r) => r.value)
    .filter((s): s is EmbeddedServer => s !== undefined);
  const failure = [postgres, redis].find((r): r is PromiseRejectedResult => r.status === 'rejected');
  const stop = async () => {
    await Promise.all(started.map((s) => s.stop()));
  };
  if (failure) {
    await stop().catch(() => undefined);
    throw failure.reason;
  }
  return {
    databaseUrl: postgres.status === 'fulfilled' ? (postgres.value?.url ?? '') : '',
    redisUrl: redis.status === 'fulfilled' ? (redis.value?.url ?? '') : '',
    stop,
  };
}

/** Stops the embedded servers of a data dir, whichever process started them. Resolves to what was running. */
export async function stopEmbeddedServices(
  dataDir: string,
  logger?: Logger,
): Promise<{ postgres: boolean; redis: boolean }> {
  const [postgres, redis] = await Promise.all([stopPostgres(dataDir, logger), stopRedis(dataDir, logger)]);
  return { postgres, redis };
}

/** Stops the embedded servers of a data dir and deletes their data (the rest of the data dir is left alone). */
export async function removeEmbeddedServicesData(dataDir: string, logger?: Logger): Promise<void> {
  await Promise.all([removePostgresData(dataDir, logger), removeRedisData(dataDir, logger)]);
}
