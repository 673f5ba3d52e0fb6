// What every role needs before it starts: settings, a logger, the servers (embedded when no URL is
// set), a database pool that answers, and the KeyManager.
import { readFileSync } from 'node:fs';
import { createPool, type Db } from '../database/pool.js';
import { ConfigError, loadEnv, parseConfig, type Config } from '../shared/config.js';
import { createKeyManager } from '../shared/custody/index.js';
import type { KeyManager } from '../shared/custody/key-manager.js';
import { startEmbeddedServices } from '../shared/embedded-services.js';
import { createLogger, type Logger } from '../shared/logger.js';

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
  redisUrl: string;
  db: Db;
  /** Stops embedded servers started for this process, if any. */
  stopServices(): Promise<void>;
}

const PG_RETRY_DELAYS_S = [1, 2, 4, 8];

async function connectPostgres(db: Db, logger: Logger): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await db.query('SELECT 1');
      return;
    } catch (err) {
      const delay = PG_RETRY_DELAYS_S[attempt];
      if (delay === undefined) fatal(`PostgreSQL is unreachable (${(err as Error).message}); giving up`);
      logger.warn({ err: (err as Error).message, retryInSeconds: delay }, 'PostgreSQL unreachable; retrying');
      await new Promise((r) => setTimeout(r, delay * 1000));
    }
  }
}

export async function prepareRuntime(role: string, config: Config = loadConfigOrExit(), logger?: Logger): Promise<Runtime> {
  logger ??= createLogger({ level: config.LOG_LEVEL, role });
  let stopServices = async () => {};
  let databaseUrl = config.DATABASE_URL;
  let redisUrl = config.REDIS_URL;
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
  const db = createPool(databaseUrl, config.DB_POOL_SIZE);
  db.on('error', (err) => logger.warn({ err: err.message }, 'idle PostgreSQL client error'));
  await connectPostgres(db, logger);
  return { config, logger, databaseUrl, redisUrl, db, stopServices };
}

export async function openKeyManager(rt: Runtime): Promise<KeyManager> {
  try {
    return await createKeyManager(rt.config);
  } catch (err) {
    fatal(`key manager: ${(err as Error).message}`);
  }
}
