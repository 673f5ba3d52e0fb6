import type { RedisClient } from '../shared/redis.js';
import type { Db } from '../database/pool.js';
import type { Config } from '../shared/config.js';
import type { KeyStore } from '../shared/custody/key-store.js';
import type { PayloadSealer } from '../shared/farm/payload-seal.js';
import type { RpcClient } from '../shared/farm/rpc-client.js';
import type { Logger } from '../shared/logger.js';
import type { ShardNames } from '../shared/shard.js';
import type { ActingCache } from './services/acting-cache.js';
import type { LoginLimiter } from './services/login-limiter.js';
import type { Mailer } from './services/mailer.js';

/** What the api's routes share; built once per process by startApi. */
export interface ApiContext {
  config: Config;
  db: Db;
  redis: RedisClient;
  names: ShardNames;
  keyStore: KeyStore;
  rpc: RpcClient;
  acting: ActingCache;
  loginLimiter: LoginLimiter;
  mailer: Mailer;
  /** The farm payload key: seals what an approval page shows. */
  sealer: PayloadSealer;
  logger: Logger;
  version: string;
}
