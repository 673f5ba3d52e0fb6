import { Redis, type RedisOptions } from 'ioredis';

/** A connection for commands. BullMQ needs `maxRetriesPerRequest: null` on its blocking connections. */
export function createRedis(url: string, opts: RedisOptions = {}): Redis {
  return new Redis(url, { lazyConnect: false, enableAutoPipelining: true, ...opts });
}

export function createBullConnection(url: string): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, enableReadyCheck: true });
}

/**
 * A command connection for request paths that must answer 503 at once while Redis is unreachable rather
 * than wait for it: no offline queue (a command sent while disconnected fails at once) and no resending
 * after a reconnect (commands in flight when the link drops fail with it). It reconnects by itself.
 * Resolves once connected; check `isUp` before work that needs it.
 */
export async function connectFailFast(url: string, onError: (err: Error) => void, opts: RedisOptions = {}): Promise<Redis> {
  const redis = createRedis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, ...opts });
  redis.on('error', onError);
  await untilReady(redis);
  return redis;
}

/** True while the connection can take commands (no round trip). */
export function isUp(redis: Redis | undefined): boolean {
  return redis?.status === 'ready';
}

/** Resolves when the connection is ready (at once if it is); rejects if it is closed for good. */
export function untilReady(redis: Redis): Promise<void> {
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
export async function closeRedis(redis: Redis | undefined): Promise<void> {
  if (!redis || redis.status === 'end') return;
  if (redis.status !== 'ready') return redis.disconnect();
  await redis.quit().then(
    () => undefined,
    () => redis.disconnect(),
  );
}
