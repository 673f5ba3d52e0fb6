import { Redis, type RedisOptions } from 'ioredis';

/** A connection for commands. BullMQ needs `maxRetriesPerRequest: null` on its blocking connections. */
export function createRedis(url: string, opts: RedisOptions = {}): Redis {
  return new Redis(url, { lazyConnect: false, enableAutoPipelining: true, ...opts });
}

export function createBullConnection(url: string): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, enableReadyCheck: true });
}
