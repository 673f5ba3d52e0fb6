#!/usr/bin/env node
// keyfarm <command>: one CLI for every process. `all` runs the roles in one process (laptops and tests).
import { migrate } from '../database/migrate.js';
import { runBackup } from './commands/backup.js';
import { runRestore } from './commands/restore.js';
import { runRotateKek } from './commands/rotate-kek.js';
import { runShardCount } from './commands/shard-count.js';
import { startRoles, type RoleSet } from './roles.js';
import { VERSION, fatal, prepareRuntime } from './runtime.js';
import { stopOnSignals } from './shutdown.js';

const USAGE = `usage: keyfarm <command>   (keyfarm --version prints the version)
  api        the HTTP API (accounts, OAuth, /api/nostr, health, metrics)
  relay-ingest  NIP-46 over relays: requests to shard jobs, responses back to the relays
  workers    shard workers (signing and encryption)
  all        api, relay-ingest and workers in one process, migrating first (npm start)
  migrate    apply database migrations and exit
  backup     pg_dump the database to a file (keyfarm backup --help)
  restore    replace the database with a backup (keyfarm restore --help)
  rotate-kek re-wrap every key under a new KEK while the farm runs (keyfarm rotate-kek --help)
  shard-count  show the farm's recorded shard count, or change it with the farm stopped (keyfarm shard-count --help)
  --version  print the version and exit`;

/** Operator commands: they run, print, and exit with their status. */
const OPERATIONS: Record<string, (args: string[]) => Promise<number>> = {
  backup: runBackup,
  restore: runRestore,
  'rotate-kek': runRotateKek,
  'shard-count': runShardCount,
};

const ROLES: Record<string, RoleSet> = {
  api: { api: true },
  'relay-ingest': { relayIngest: true },
  workers: { workers: true },
  all: { api: true, relayIngest: true, workers: true },
};

async function main(command: string | undefined): Promise<void> {
  if (!command || command === '--help' || command === '-h') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (command === '--version' || command === '-v') {
    process.stdout.write(`${VERSION}\n`);
    return;
  }
  const operation = OPERATIONS[command];
  if (operation) {
    process.exitCode = await operation(process.argv.slice(3));
    return;
  }
  if (command !== 'migrate' && !ROLES[command]) fatal(`unknown command "${command}"\n${USAGE}`);
  const rt = await prepareRuntime(command);
  if (command === 'migrate' || command === 'all') {
    const applied = await migrate(rt.db, rt.logger).catch((err: Error) => fatal(err.message));
    rt.logger.info({ applied }, 'database migrated');
    if (command === 'migrate') {
      await rt.db.end();
      await rt.stopServices();
      return;
    }
  }
  let running: { stop(): Promise<void> } | undefined;
  stopOnSignals(rt, async () => running?.stop());
  running = await startRoles(rt, ROLES[command]!);
  rt.logger.info({ role: command, version: VERSION }, 'keyfarm started');
}

main(process.argv[2]).catch((err: Error) => fatal(err.message));
