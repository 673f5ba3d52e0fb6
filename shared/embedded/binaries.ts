// Locating the Redis and PostgreSQL server binaries of the Debian packages. Installing them is the
// shell scripts' job (scripts/ensure-deps.sh); here a missing one is a one-line error naming the package.
import { accessSync, constants, existsSync, readdirSync } from 'node:fs';
import path from 'node:path';

export class MissingBinaryError extends Error {
  override name = 'MissingBinaryError';
  constructor(
    readonly binary: string,
    readonly debianPackage: string,
    readonly urlSetting: 'DATABASE_URL' | 'REDIS_URL',
  ) {
    super(
      `${binary} not found: install the Debian package ${debianPackage} (apt-get install ${debianPackage}), or set ${urlSetting} to use an existing server`,
    );
  }
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(name: string): string | undefined {
  const dirs = (process.env.PATH ?? '').split(path.delimiter).filter(Boolean);
  for (const dir of [...dirs, '/usr/bin', '/usr/sbin', '/usr/local/bin']) {
    const file = path.join(dir, name);
    if (isExecutable(file)) return file;
  }
  return undefined;
}

export function findRedisServer(): string {
  const file = onPath('redis-server');
  if (!file) throw new MissingBinaryError('redis-server', 'redis-server', 'REDIS_URL');
  return file;
}

export interface PostgresBinaries {
  version: string;
  initdb: string;
  pgCtl: string;
  /** The server itself, run in single-user mode to set the superuser's password before it listens. */
  postgres: string;
}

const PG_ROOT = '/usr/lib/postgresql';

function binariesIn(dir: string, version: string): PostgresBinaries | undefined {
  const initdb = path.join(dir, 'initdb');
  const pgCtl = path.join(dir, 'pg_ctl');
  const postgres = path.join(dir, 'postgres');
  return isExecutable(initdb) && isExecutable(pgCtl) && isExecutable(postgres)
    ? { version, initdb, pgCtl, postgres }
    : undefined;
}

/**
 * The PostgreSQL server binaries: of major `version` when given (an existing cluster must be run by its own
 * major version), else the newest under /usr/lib/postgresql, else the ones on PATH.
 */
export function findPostgres(version?: string): PostgresBinaries {
  const versions = existsSync(PG_ROOT)
    ? readdirSync(PG_ROOT)
        .filter((v) => /^\d+$/.test(v))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  for (const v of versions) {
    if (version !== undefined && v !== version) continue;
    const found = binariesIn(path.join(PG_ROOT, v, 'bin'), v);
    if (found) return found;
  }
  const initdb = onPath('initdb');
  if (initdb && version === undefined) {
    const found = binariesIn(path.dirname(initdb), 'unknown');
    if (found) return found;
  }
  const pkg = version === undefined ? 'postgresql' : `postgresql-${version}`;
  throw new MissingBinaryError(
    version === undefined ? 'PostgreSQL server (initdb, pg_ctl)' : `PostgreSQL ${version} server`,
    pkg,
    'DATABASE_URL',
  );
}
