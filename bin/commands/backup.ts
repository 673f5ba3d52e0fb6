// keyfarm backup [--out FILE]: a pg_dump (custom format) of the whole Keyfarm database, written aside and
// renamed into place once pg_restore can read its table of contents. Mode 0600: it holds password hashes
// and sealed keys. The KEKs are not in it; the command says where they are.
import { open, rename, rm, stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { loadConfigOrExit } from '../runtime.js';
import { commandLogger, openCommandDatabase } from './database.js';
import { describeSummary, kekWarning, summarizeDatabase } from './custody-summary.js';
import { connectionFor, findPgTool, runPgTool, serverMajorVersion } from './pg-tools.js';

export const BACKUP_USAGE = `usage: keyfarm backup [--out FILE]
  Dumps DATABASE_URL (or the embedded PostgreSQL) with pg_dump -Fc to FILE
  (default ./keyfarm-<UTC time>.dump, mode 0600). Restore with: keyfarm restore FILE`;

function defaultFile(now = new Date()): string {
  return `keyfarm-${now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')}.dump`;
}

function size(bytes: number): string {
  return bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

export async function runBackup(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { out: { type: 'string', short: 'o' }, help: { type: 'boolean', short: 'h', default: false } },
  });
  if (values.help) {
    process.stdout.write(`${BACKUP_USAGE}\n`);
    return 0;
  }
  if (positionals.length > 0) throw new Error(`unexpected argument ${positionals[0]}\n${BACKUP_USAGE}`);
  const out = values.out ?? defaultFile();
  const config = loadConfigOrExit();
  const database = await openCommandDatabase(config, commandLogger(config, 'backup'));
  const partial = `${out}.partial`;
  try {
    const summary = await summarizeDatabase(database.db);
    const major = await serverMajorVersion(database.db);
    const pgDump = await findPgTool('pg_dump', major);
    const pgRestore = await findPgTool('pg_restore', major);
    const { dbname, env } = connectionFor(database.url);
    // Created private first: pg_dump truncates and writes into it, keeping the mode.
    await (await open(partial, 'w', 0o600)).close();
    await runPgTool(pgDump, ['--format=custom', '--compress=6', `--file=${partial}`, `--dbname=${dbname}`], env);
    await runPgTool(pgRestore, ['--list', partial], env);
    await rename(partial, out);
    const bytes = (await stat(out)).size;
    process.stdout.write(`backup written: ${out} (${size(bytes)}) of ${database.label}\n`);
    process.stdout.write(`contains: ${summary ? describeSummary(summary) : 'no Keyfarm schema (never migrated)'}\n`);
    process.stdout.write(`${kekWarning(config)}\n`);
    return 0;
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  } finally {
    await database.close();
  }
}
