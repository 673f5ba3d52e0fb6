// The database an operator command works on: DATABASE_URL, or the embedded PostgreSQL under DATA_DIR
// (started for the command and stopped after it when it was not already running).
import pino from 'pino';
import { createPool, type Db } from '../../database/pool.js';
import type { Config } from '../../shared/config.js';
import { startEmbeddedServices } from '../../shared/embedded-services.js';
import { createLogger, type Logger } from '../../shared/logger.js';

export interface CommandDatabase {
  url: string;
  db: Db;
  /** host:port/database, without user or password: safe to print. */
  label: string;
  close(): Promise<void>;
}

/** Logs of an operator command go to stderr, so stdout carries only its result. */
export function commandLogger(config: Config, role: string): Logger {
  return createLogger({ level: config.LOG_LEVEL, role, destination: pino.destination({ dest: 2, sync: true }) });
}

export function describeDatabase(url: string): string {
  const u = new URL(url);
  return `${u.hostname}:${u.port || '5432'}${u.pathname}`;
}

export async function openCommandDatabase(config: Config, logger: Logger): Promise<CommandDatabase> {
  let url = config.DATABASE_URL;
  let stopEmbedded = async () => {};
  if (!url) {
    const embedded = await startEmbeddedServices({ dataDir: config.DATA_DIR, logger, redis: false });
    url = embedded.databaseUrl;
    stopEmbedded = () => embedded.stop();
  }
  const db = createPool(url, 2);
  db.on('error', (err) => logger.warn({ err: err.message }, 'idle PostgreSQL client error'));
  try {
    await db.query('SELECT 1');
  } catch (err) {
    await db.end().catch(() => undefined);
    await stopEmbedded();
    throw new Error(`PostgreSQL at ${describeDatabase(url)} is unreachable: ${(err as Error).message}`);
  }
  return {
    url,
    db,
    label: describeDatabase(url),
    async close() {
      await db.end().catch(() => undefined);
      await stopEmbedded();
    },
  };
}
