// What every role needs before it starts: settings, a logger, the servers (embedded when no URL is
// set), a database pool that answers, and the KeyManager.
import { readFileSync } from 'node:fs';
import { createPool, type Db } from '../database/pool.js';
import { ConfigError, loadEnv, parseConfig, type Config } from '../shared/config.js';
import { createKeyManager } from '../shared/custody/index.js';
import type { KeyManager } from '../shared/custody/key-manager.js';
import { startEmbeddedServices } from '../shared/embedded-services.js';
import { createLogger, type Logger } from '../shared/logger.js';
import { redisTargetOf, type RedisTarget } from '../shared/redis.js';

export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

/** Stops the start with one line naming the problem. */
export function fatal(message: string): never {
  process.stderr.write(`keyfarm: ${message}\n`);
  process.exit(1);
}

export function loadConfigOrExit(): Config {
  try {
    return parseConfig(loadEnv());
  } catch (err) {
    if (err instanceof ConfigError) fatal(err.message);
    throw err;
  }
}

export interface Runtime {
  config: Config;
  logger: Logger;
  databaseUrl: string;
  /** A redis:// URL, or the Redis Cluster of REDIS_CLUSTER_NODES. */
  redisUrl: RedisTarget;
  db: Db;
  /** Stops embedded servers started for this process, if any. */
  stopServices(): Promise<void>;
}

/** Waits before the 2nd, 3rd, ... attempt to reach PostgreSQL at start; then the start fails. */
export const PG_RETRY_DELAYS_S = [1, 2, 4, 8];

/**
 * Pool limits that turn a database outage or freeze into fast errors (503 at the HTTP door) instead of
 * requests that hang: a connection (or a free pooled one) within DB_ACQUIRE_TIMEOUT_MS, a statement
 * cancelled by the server past DB_STATEMENT_TIMEOUT_MS, and given up by this side a second later (a frozen
 * server cancels nothing).
 */
export function poolLimits(config: Pick<Config, 'DB_ACQUIRE_TIMEOUT_MS' | 'DB_STATEMENT_TIMEOUT_MS'>) {
  return {
    connectionTimeoutMillis: config.DB_ACQUIRE_TIMEOUT_MS,
    statement_timeout: config.DB_STATEMENT_TIMEOUT_MS,
    query_timeout: config.DB_STATEMENT_TIMEOUT_MS + 1000,
  };
}

/** host:port of a database URL, without its credentials. */
function serverOf(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || 5432}`;
  } catch {
    return 'DATABASE_URL';
  }
}

/** pg's errors for an unreachable server may carry their reason only in a code or in nested errors. */
function reasonOf(err: unknown): string {
  const e = err as Error & { code?: string; errors?: Error[] };
  return e.message || e.errors?.map((x) => x.message).join('; ') || e.code || String(err);
}

async function connectPostgres(db: Db, url: string, logger: Logger): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await db.query('SELECT 1');
      return;
    } catch (err) {
      const delay = PG_RETRY_DELAYS_S[attempt];
      if (delay === undefined) {
        fatal(
          `PostgreSQL at ${serverOf(url)} is unreachable after ${attempt + 1} attempts (${reasonOf(err)}); giving up`,
        );
      }
      logger.warn(
        { err: reasonOf(err), server: serverOf(url), retryInSeconds: delay },
        'PostgreSQL unreachable; retrying',
      );
      await new Promise((r) => setTimeout(r, delay * 1000));
    }
  }
}

export async function prepareRuntime(
  role: string,
  config: Config = loadConfigOrExit(),
  logger?: Logger,
): Promise<Runtime> {
  logger ??= createLogger({ level: config.LOG_LEVEL, role });
  let stopServices = async () => {};
  let databaseUrl = config.DATABASE_URL;
  let redisUrl: RedisTarget | undefined = config.REDIS_CLUSTER_NODES ? redisTargetOf(config, '') : config.REDIS_URL;
  if (!databaseUrl || !redisUrl) {
    const embedded = await startEmbeddedServices({
      dataDir: config.DATA_DIR,
      logger,
      postgres: !databaseUrl,
      redis: !redisUrl,
    }).catch((err: Error) => fatal(`embedded services: ${err.message}`));
    databaseUrl ??= embedded.databaseUrl;
    redisUrl ??= embedded.redisUrl;
    stopServices = () => embedded.stop();
  }
  const db = createPool(databaseUrl, config.DB_POOL_SIZE, poolLimits(config));
  db.on('error', (err) => logger.warn({ err: err.message }, 'idle PostgreSQL client error'));
  await connectPostgres(db, databaseUrl, logger);
  return { config, logger, databaseUrl, redisUrl, db, stopServices };
}

export async function openKeyManager(rt: Runtime): Promise<KeyManager> {
  try {
    return await createKeyManager(rt.config);
  } catch (err) {
    fatal(`key manager: ${(err as Error).message}`);
  }
}
