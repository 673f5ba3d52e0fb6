// keyfarm restore FILE [--yes]: replaces the Keyfarm database with a backup, in one transaction
// (pg_restore --clean --if-exists --single-transaction). A database that already holds users is only
// replaced with --yes. Every Keyfarm process should be stopped first and started after.
import { access, constants } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { loadConfigOrExit } from '../runtime.js';
import { commandLogger, openCommandDatabase } from './database.js';
import { describeSummary, kekWarning, missingLocalKeks, summarizeDatabase } from './custody-summary.js';
import { connectionFor, findPgTool, runPgTool, serverMajorVersion } from './pg-tools.js';

export const RESTORE_USAGE = `usage: keyfarm restore FILE [--yes]
  Replaces everything in DATABASE_URL (or the embedded PostgreSQL) with a keyfarm backup.
  Stop every keyfarm process first. --yes is needed when the database already holds users.`;

export async function runRestore(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { yes: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } },
  });
  if (values.help) {
    process.stdout.write(`${RESTORE_USAGE}\n`);
    return 0;
  }
  const file = positionals[0];
  if (!file || positionals.length > 1) throw new Error(RESTORE_USAGE);
  await access(file, constants.R_OK).catch(() => {
    throw new Error(`cannot read backup file ${file}`);
  });
  const config = loadConfigOrExit();
  const database = await openCommandDatabase(config, commandLogger(config, 'restore'));
  try {
    const major = await serverMajorVersion(database.db);
    const pgRestore = await findPgTool('pg_restore', major);
    const { dbname, env } = connectionFor(database.url);
    await runPgTool(pgRestore, ['--list', file], env).catch((err: Error) => {
      throw new Error(`${file} is not a readable pg_dump archive (${err.message})`);
    });
    const before = await summarizeDatabase(database.db);
    if (before && before.users > 0 && !values.yes) {
      process.stderr.write(
        `keyfarm restore: ${database.label} holds ${before.users} users; restoring replaces all of it. Run again with --yes to go ahead.\n`,
      );
      return 1;
    }
    await runPgTool(
      pgRestore,
      [
        '--clean',
        '--if-exists',
        '--no-owner',
        '--no-privileges',
        '--single-transaction',
        '--exit-on-error',
        `--dbname=${dbname}`,
        file,
      ],
      env,
    );
    const after = await summarizeDatabase(database.db);
    process.stdout.write(`restored ${file} into ${database.label}\n`);
    process.stdout.write(`contains: ${after ? describeSummary(after) : 'no Keyfarm schema'}\n`);
    const missing = after ? await missingLocalKeks(config, after.byKek) : [];
    if (missing.length > 0) {
      process.stdout.write(
        `WARNING: MASTER_KEY_PATH ${config.MASTER_KEY_PATH} and its keyring do not hold KEK ${missing.join(', ')}: restore the master key files of the backup's time before starting keyfarm\n`,
      );
    }
    process.stdout.write(`${kekWarning(config)}\n`);
    process.stdout.write(
      'next: keyfarm migrate (if this release is newer than the backup), then start every keyfarm process again\n',
    );
    return 0;
  } finally {
    await database.close();
  }
}
