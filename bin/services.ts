#!/usr/bin/env node
// Runs the embedded PostgreSQL and Redis on their own, for scripts and for a farm started by hand:
//   node dist/bin/services.js start [--data-dir D] [--no-fsync]   prints DATABASE_URL=… and REDIS_URL=…
//   node dist/bin/services.js stop  [--data-dir D]
//   node dist/bin/services.js wipe  [--data-dir D]                stops them and deletes their data
// stdout carries only the URL lines (eval "$(node dist/bin/services.js start)"); logs go to stderr. The URLs
// carry the servers' generated passwords: keep stdout out of logs (capture it, eval it, or write it to a
// private .env).
import { parseArgs } from 'node:util';
import pino from 'pino';
import { loadEnv } from '../shared/config.js';
import { createLogger } from '../shared/logger.js';
import {
  removeEmbeddedServicesData,
  startEmbeddedServices,
  stopEmbeddedServices,
} from '../shared/embedded-services.js';

const USAGE = 'usage: services <start|stop|wipe> [--data-dir DIR] [--no-fsync]';

/** A value safe for both `eval` and a .env file is printed bare; anything else single-quoted. */
function shellLine(name: string, value: string): string {
  return /^[\w@%+=:,./-]*$/.test(value) ? `${name}=${value}` : `${name}='${value.replaceAll("'", "'\\''")}'`;
}

async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      'data-dir': { type: 'string' },
      'no-fsync': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const command = positionals[0];
  if (values.help || positionals.length !== 1 || !command) {
    process.stderr.write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  const env = loadEnv();
  const dataDir = values['data-dir'] ?? env.DATA_DIR ?? '.data';
  const logger = createLogger({
    role: 'services',
    level: env.LOG_LEVEL ?? 'info',
    destination: pino.destination({ dest: 2, sync: true }),
  });

  switch (command) {
    case 'start': {
      const services = await startEmbeddedServices({ dataDir, logger, durable: !values['no-fsync'] });
      process.stdout.write(
        `${shellLine('DATABASE_URL', services.databaseUrl)}\n${shellLine('REDIS_URL', services.redisUrl)}\n`,
      );
      return 0;
    }
    case 'stop': {
      const stopped = await stopEmbeddedServices(dataDir, logger);
      if (!stopped.postgres && !stopped.redis) logger.info({ dataDir }, 'no embedded services were running');
      return 0;
    }
    case 'wipe':
      await removeEmbeddedServicesData(dataDir, logger);
      return 0;
    default:
      process.stderr.write(`unknown command ${command}\n${USAGE}\n`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`services: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
