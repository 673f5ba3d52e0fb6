// pg_dump and pg_restore for the server in hand. A client older than the server refuses to dump it, so
// the one of the server's major version is preferred (Debian: /usr/lib/postgresql/<major>/bin), then a
// newer one, then whatever is on PATH if it is new enough.
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Queryable } from '../../database/pool.js';

const run = promisify(execFile);
const PG_ROOT = '/usr/lib/postgresql';

export type PgTool = 'pg_dump' | 'pg_restore';

export async function serverMajorVersion(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ v: string }>("SELECT current_setting('server_version_num') AS v");
  return Math.floor(Number(rows[0]!.v) / 10000);
}

async function majorOf(binary: string): Promise<number | undefined> {
  try {
    const { stdout } = await run(binary, ['--version'], { timeout: 10_000 });
    const m = /\(PostgreSQL\)\s+(\d+)/.exec(stdout);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** The candidates in order of preference: the server's major first, then newer ones, then PATH. */
function candidates(tool: PgTool, serverMajor: number): string[] {
  const versions = existsSync(PG_ROOT)
    ? readdirSync(PG_ROOT)
        .filter((v) => /^\d+$/.test(v))
        .map(Number)
        .filter((v) => v >= serverMajor)
    : [];
  versions.sort((a, b) => (a === serverMajor ? -1 : b === serverMajor ? 1 : a - b));
  return [...versions.map((v) => path.join(PG_ROOT, String(v), 'bin', tool)).filter((f) => existsSync(f)), tool];
}

export async function findPgTool(tool: PgTool, serverMajor: number): Promise<string> {
  for (const binary of candidates(tool, serverMajor)) {
    const major = await majorOf(binary);
    if (major !== undefined && major >= serverMajor) return binary;
  }
  throw new Error(
    `no ${tool} of PostgreSQL ${serverMajor} or newer found (looked in ${PG_ROOT}/*/bin and PATH): apt-get install postgresql-client-${serverMajor}`,
  );
}

/** The URL without its password, and the environment that carries it, so no secret shows in `ps`. */
export function connectionFor(url: string): { dbname: string; env: NodeJS.ProcessEnv } {
  const u = new URL(url);
  const password = decodeURIComponent(u.password);
  u.password = '';
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (password) env.PGPASSWORD = password;
  return { dbname: u.toString(), env };
}

/** Runs a PostgreSQL client tool; its stderr becomes the error message when it fails. */
export async function runPgTool(binary: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  try {
    const { stdout } = await run(binary, args, { env, maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    const detail = (e.stderr ?? '').trim().split('\n').slice(-5).join('\n') || e.message;
    throw new Error(`${path.basename(binary)} failed: ${detail}`);
  }
}
